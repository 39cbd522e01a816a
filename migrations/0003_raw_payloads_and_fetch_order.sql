-- Nothing Helcim said is thrown away, and no state goes backwards.

-- An answer that could not be read is kept too: exactly as received (it may not even be
-- JSON) in `raw_body`, with why it could not be read. A readable answer stays in `body`.
ALTER TABLE helcim_payloads
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN raw_body bytea,
    ADD COLUMN parse_error text,
    ADD CONSTRAINT helcim_payloads_one_body CHECK (num_nonnulls(body, raw_body) = 1),
    ADD CONSTRAINT helcim_payloads_unreadable_says_why
        CHECK (raw_body IS NULL OR parse_error IS NOT NULL);

COMMENT ON COLUMN helcim_payloads.fetched_at IS
    'when the request that got this answer was sent';

CREATE INDEX helcim_payloads_unreadable ON helcim_payloads (account_id, kind, object_id)
    WHERE parse_error IS NOT NULL;

-- Append-only means append-only: the audit record cannot be edited or deleted in place.
CREATE FUNCTION helcim_payloads_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'helcim_payloads is append-only: % is not allowed', TG_OP
        USING HINT = 'insert a new row instead';
END
$$;

CREATE TRIGGER helcim_payloads_append_only
    BEFORE UPDATE OR DELETE ON helcim_payloads
    FOR EACH ROW EXECUTE FUNCTION helcim_payloads_append_only();

-- `fetched_at` on card_batches and card_transactions is now the time the request was
-- sent (it was the commit time); the worker writes a row only when its fetch is not
-- older than the stored one, and never reopens a closed batch.
COMMENT ON COLUMN card_batches.fetched_at IS
    'when the request of the stored answer was sent; an older answer never replaces it';
COMMENT ON COLUMN card_transactions.fetched_at IS
    'when the request of the stored answer was sent; an older answer never replaces it';
