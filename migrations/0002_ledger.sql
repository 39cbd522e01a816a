-- The ledger: every webhook delivery, every card transaction and card batch as
-- Helcim's API reported it (typed columns beside the raw JSON), and API keys.
-- Money is integer minor units with its currency; times are timestamptz (UTC inside,
-- converted from Helcim's offset-less Mountain Time once, in the client).

-- Every webhook the worker took off the queue. (account_id, webhook_id) is Helcim's
-- idempotency key: a redelivery finds its row and is not processed twice.
CREATE TABLE webhook_deliveries (
    account_id        text        NOT NULL,
    webhook_id        text        NOT NULL,
    event_type        text        NOT NULL,
    object_id         text,
    helcim_timestamp  timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    raw_body          bytea       NOT NULL,
    request_id        text,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    attempts          integer     NOT NULL DEFAULT 1,
    -- null until the event's work is committed
    processed_at      timestamptz,
    -- `reconciled`, `recorded` (no fetch needed), or `dead-lettered: <reason>`
    outcome           text,
    PRIMARY KEY (account_id, webhook_id)
);

CREATE INDEX webhook_deliveries_unprocessed ON webhook_deliveries (first_seen_at)
    WHERE processed_at IS NULL;

CREATE TABLE card_batches (
    account_id                    text        NOT NULL,
    card_batch_id                 bigint      NOT NULL,
    terminal_id                   text,
    batch_number                  bigint,
    opened_at                     timestamptz,
    updated_at                    timestamptz,
    -- null while open
    closed_at                     timestamptz,
    closed                        boolean     NOT NULL,
    -- Totals from `collect-stats`, in minor units of the batch's currency (taken from
    -- its transactions: a batch carries none). Null when fetched without stats.
    currency                      char(3),
    net_sales_minor               bigint,
    total_sales_minor             bigint,
    total_refunds_minor           bigint,
    total_reversed_minor          bigint,
    total_refunds_reversed_minor  bigint,
    count_total                   bigint,
    count_approved                bigint,
    count_declined                bigint,
    raw                           json        NOT NULL,
    fetched_at                    timestamptz NOT NULL,
    PRIMARY KEY (account_id, card_batch_id)
);

CREATE TABLE card_transactions (
    account_id          text        NOT NULL,
    transaction_id      bigint      NOT NULL,
    -- Everything below is null while `reconciliation_status` is `pending`: the
    -- webhook announced the transaction but its API record is not stored yet.
    card_batch_id       bigint,
    created_at          timestamptz,
    -- `dateCreated` as Helcim wrote it (Mountain Time, no offset): one reading a year
    -- is ambiguous, so the original stays beside the conversion.
    created_at_local    text,
    status              text,
    type                text,
    amount_minor        bigint,
    currency            char(3),
    card_type           text,
    card_number_masked  text,
    card_token          text,
    card_holder_name    text,
    customer_code       text,
    invoice_number      text,
    approval_code       text,
    avs_response        text,
    cvv_response        text,
    helcim_user         text,
    warning             text,
    raw                 json,
    fetched_at          timestamptz,
    reconciliation_status  text NOT NULL DEFAULT 'pending'
        CHECK (reconciliation_status IN ('pending', 'matched', 'exception')),
    reconciliation_reason  text,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, transaction_id),
    CHECK (reconciliation_status = 'pending' OR (amount_minor IS NOT NULL AND currency IS NOT NULL
                                                 AND created_at IS NOT NULL AND raw IS NOT NULL))
);

CREATE INDEX card_transactions_batch ON card_transactions (account_id, card_batch_id);
CREATE INDEX card_transactions_created ON card_transactions (account_id, created_at);
CREATE INDEX card_transactions_exceptions ON card_transactions (account_id)
    WHERE reconciliation_status <> 'matched';

-- Every API answer as received, append-only, for audit: what Helcim said, and when.
CREATE TABLE helcim_payloads (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('card_transaction', 'card_batch')),
    object_id   bigint      NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    body        json        NOT NULL
);

CREATE INDEX helcim_payloads_object ON helcim_payloads (account_id, kind, object_id);

-- API keys: only a SHA-256 of the key is kept (keys are 256-bit random, so a fast
-- hash is enough); the prefix names the key in listings.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_prefix  text        NOT NULL,
    key_hash    bytea       NOT NULL UNIQUE,
    role        text        NOT NULL CHECK (role IN ('admin', 'finance', 'partner')),
    -- null: every account (admin and finance only); otherwise the accounts in scope
    account_ids text[],
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (role <> 'partner' OR account_ids IS NOT NULL)
);
