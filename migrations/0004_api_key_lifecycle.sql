-- API key lifecycle: an optional expiry (a key past it answers 401) and the time of
-- its last use (written at most about once a minute per key, so reads stay reads).
ALTER TABLE api_keys
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz;

-- `reconctl api-keys revoke <prefix>` finds keys by the prefix listings show.
CREATE INDEX api_keys_prefix ON api_keys (key_prefix);
