-- Invoice matching (docs/attribution.md): for evidence without a transaction id
-- (HelcimPay.js, Smart Terminal) the attribution engine looks up the account's stored
-- transactions with the same invoice number. Without this index each lookup reads every
-- transaction of the account.
CREATE INDEX card_transactions_invoice ON card_transactions (account_id, invoice_number)
    WHERE invoice_number IS NOT NULL;
