-- Purpose keys (docs/security.md): secret columns now hold version-2 ciphertexts, each
-- naming its purpose and data key; version-1 ones (under RECON_MASTER_KEY directly) stay
-- readable until `reconctl keys reencrypt` rewrites them. No column changes for that.
--
-- Connected accounts: what `connectedAccount` webhooks announce to an integration
-- partner. The merchant's API token arrives sealed to the worker's intake key (never
-- in clear on the queue) and is kept here encrypted under the API-token data key; the
-- delivery's stored body has the token replaced by a marker.
CREATE TABLE connected_accounts (
    -- The partner account whose webhook URL received the event.
    account_id              text        NOT NULL,
    -- Helcim's `connectedAccountId` (the referred merchant).
    connected_account_id    text        NOT NULL,
    api_token_encrypted     bytea       NOT NULL,
    -- First 12 hex digits of SHA-256 of the token: names it without revealing it.
    api_token_fingerprint   text        NOT NULL,
    -- The delivery that set the token, and Helcim's timestamp for it: an older
    -- delivery processed late never replaces a newer token.
    webhook_id              text        NOT NULL,
    helcim_timestamp        timestamptz NOT NULL,
    first_seen_at           timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, connected_account_id)
);
