-- A webhook body that carried a secret (a `connectedAccount` event's `apiToken`) reaches
-- the worker redacted, with the secret sealed to the intake key (docs/security.md). The
-- sealed form is kept beside the redacted body, so nothing Helcim sent is thrown away:
-- it is ciphertext only the intake private key opens, never the secret in clear.
ALTER TABLE webhook_deliveries ADD COLUMN sealed_secrets bytea;
