-- Attribution evidence: what Helcim answered about the `partner-token` of each request
-- that made (or started) a payment. Helcim keeps no field on a transaction that says
-- whether it was attributed to the integration partner; the only evidence is the
-- `is-valid-partner-token` header on the response to the request that made it. The
-- gateway records it as the request passes; an integration that calls Helcim directly
-- reports it as a receipt (`POST /v1/attribution/receipts`).

-- How the gateway finds a request's account from its `api-token` header without
-- decrypting anything: HMAC-SHA256 of the token under the lookup key (recon-store
-- `lookup.rs`). Null until a process holding the lookup key has fingerprinted the row.
ALTER TABLE accounts ADD COLUMN api_token_lookup text;
CREATE INDEX accounts_api_token_lookup ON accounts (api_token_lookup)
    WHERE api_token_lookup IS NOT NULL;

-- A merchant registered by a `connectedAccount` webhook: the partner account whose
-- webhook announced it, and Helcim's id for it. Its partner token, unless it has its
-- own, is the referring account's.
ALTER TABLE accounts ADD COLUMN referred_by text REFERENCES accounts (account_id);
ALTER TABLE accounts ADD COLUMN connected_account_id text;

CREATE TABLE attribution_evidence (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- One row per payment request, whatever the retries: for the gateway a keyed
    -- digest of (token fingerprint, endpoint, idempotency key, body) when the request
    -- had an idempotency key, else of the gateway's own request id; for a receipt
    -- (account, receiptId). Re-recording the same request (a retry, a spool replayed
    -- after a crash) finds this row instead of adding one.
    dedupe_key              text        NOT NULL UNIQUE,
    source                  text        NOT NULL CHECK (source IN ('gateway', 'receipt')),
    -- The registered account; null when the gateway saw a token no account has (then
    -- `api_token_lookup` names it, and the evidence is reported as unregistered).
    account_id              text,
    api_token_lookup        text,
    CHECK (account_id IS NOT NULL OR api_token_lookup IS NOT NULL),
    -- What kind of request: `payment/purchase`, `payment/preauth`, `payment/capture`,
    -- `payment/verify`, `payment/refund`, `payment/reverse`, `payment/withdraw`,
    -- `helcim-pay/initialize`, `devices/payment/purchase`, `devices/payment/refund`,
    -- `payment-plans`, `subscriptions`, `add-ons`; `receipt` for receipts.
    endpoint                text        NOT NULL,
    idempotency_key         text,
    partner_token_sent      boolean     NOT NULL,
    -- The gateway added the partner token (the request had none).
    partner_token_added     boolean     NOT NULL DEFAULT false,
    CHECK (NOT (partner_token_sent AND partner_token_added)),
    -- Helcim's `is-valid-partner-token` answer: 1, 0, or null when absent.
    is_valid_partner_token  smallint    CHECK (is_valid_partner_token IN (0, 1)),
    -- `answered` (Helcim answered: `response_status` says how), `unreachable` (no
    -- answer: connection failed), `timeout` (no answer in time), `reported` (a receipt).
    outcome                 text        NOT NULL
                            CHECK (outcome IN ('answered', 'unreachable', 'timeout', 'reported')),
    response_status         smallint,
    CHECK ((outcome = 'answered') = (response_status IS NOT NULL)),
    -- From Helcim's response body when it has one (the Payment API's do).
    transaction_id          bigint,
    -- From the request body: what matching falls back on when there is no id.
    invoice_number          text,
    customer_code           text,
    amount_minor            bigint,
    currency                char(3),
    CHECK (amount_minor IS NULL OR currency IS NOT NULL),
    -- When Helcim answered (gateway) or when the integration saw the answer (receipt).
    observed_at             timestamptz NOT NULL,
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    -- Receipts only: the caller's id, and the API key that sent it.
    receipt_id              text,
    submitted_by            text,
    CHECK ((source = 'receipt') = (receipt_id IS NOT NULL))
);

CREATE INDEX attribution_evidence_transaction
    ON attribution_evidence (account_id, transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX attribution_evidence_invoice
    ON attribution_evidence (account_id, invoice_number) WHERE invoice_number IS NOT NULL;
CREATE INDEX attribution_evidence_unregistered
    ON attribution_evidence (api_token_lookup) WHERE account_id IS NULL;
CREATE INDEX attribution_evidence_observed ON attribution_evidence (observed_at);
