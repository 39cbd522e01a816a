-- Merchant accounts and their secrets. Every secret column holds ciphertext made by
-- recon-store's SecretCipher (AES-256-GCM under RECON_MASTER_KEY, bound to its row and
-- purpose); nothing here is readable without the key.

CREATE TABLE accounts (
    account_id               text PRIMARY KEY
                             CHECK (account_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    display_name             text,
    -- Helcim `api-token` for this merchant (encrypted); null until configured.
    api_token_encrypted      bytea,
    -- The integration partner's `partner-token` (encrypted); null when not a partner.
    partner_token_encrypted  bytea,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- Webhook verifier tokens. Several may be active at once while a token rotates; a
-- retired one no longer verifies.
CREATE TABLE account_verifier_tokens (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    token_encrypted  bytea NOT NULL,
    -- First 12 hex digits of SHA-256 of the token: names it in listings without
    -- revealing it.
    fingerprint      text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz,
    UNIQUE (account_id, fingerprint)
);

CREATE INDEX account_verifier_tokens_active
    ON account_verifier_tokens (account_id) WHERE retired_at IS NULL;
