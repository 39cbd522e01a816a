-- Attribution gaps (docs/attribution.md): which revenue-bearing transactions will not
-- earn the partner its revenue share, why, and how much is at risk before the month
-- closes; escalations and alerts as the close nears; the frozen report of each closed
-- month.
--
-- The engine (recon-worker `attribution`) owns every table here but `accounts`. It
-- learns what changed from `attribution_dirty`, which triggers fill whoever writes the
-- ledger or the evidence, so no writer needs to know about attribution and no change is
-- missed: a dirty row is deleted in the same database transaction that writes the
-- verdicts it leads to.

-- The share of Helcim's revenue the partner earns on the account, in basis points
-- (`reconctl accounts set-share`). Null: no rate known, so no share at risk is shown.
ALTER TABLE accounts ADD COLUMN revenue_share_bps integer
    CHECK (revenue_share_bps BETWEEN 0 AND 10000);

-- What the engine has still to look at: a ledger transaction that was stored or
-- changed, or evidence that was recorded or replaced. Rows repeat; the engine takes
-- them in batches (FOR UPDATE SKIP LOCKED, so replicas share the work) and dedupes.
CREATE TABLE attribution_dirty (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      text,
    transaction_id  bigint,
    evidence_id     bigint,
    marked_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((transaction_id IS NOT NULL AND account_id IS NOT NULL) OR evidence_id IS NOT NULL)
);

-- Wakes the engine at once (LISTEN recon_attribution); it also polls, so a lost
-- notification costs latency, never a verdict.
CREATE FUNCTION attribution_mark_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.reconciliation_status = 'pending' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.reconciliation_status <> 'pending'
       AND OLD.status IS NOT DISTINCT FROM NEW.status
       AND OLD.type IS NOT DISTINCT FROM NEW.type
       AND OLD.amount_minor IS NOT DISTINCT FROM NEW.amount_minor
       AND OLD.currency IS NOT DISTINCT FROM NEW.currency
       AND OLD.created_at IS NOT DISTINCT FROM NEW.created_at
       AND OLD.invoice_number IS NOT DISTINCT FROM NEW.invoice_number THEN
        RETURN NULL;
    END IF;
    INSERT INTO attribution_dirty (account_id, transaction_id)
        VALUES (NEW.account_id, NEW.transaction_id);
    PERFORM pg_notify('recon_attribution', '');
    RETURN NULL;
END $$;

CREATE TRIGGER card_transactions_attribution
    AFTER INSERT OR UPDATE ON card_transactions
    FOR EACH ROW EXECUTE FUNCTION attribution_mark_transaction();

CREATE FUNCTION attribution_mark_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO attribution_dirty (account_id, evidence_id) VALUES (NEW.account_id, NEW.id);
    PERFORM pg_notify('recon_attribution', '');
    RETURN NULL;
END $$;

CREATE TRIGGER attribution_evidence_attribution
    AFTER INSERT OR UPDATE ON attribution_evidence
    FOR EACH ROW EXECUTE FUNCTION attribution_mark_evidence();

-- The engine's verdict on every stored ledger transaction: one table scan gives a
-- month's report (the month, kind and money are copied here so the report needs no
-- join over the ledger).
CREATE TABLE attribution_transactions (
    account_id      text        NOT NULL,
    transaction_id  bigint      NOT NULL,
    -- First day of the calendar month, in the close time zone, of the transaction's
    -- time (`created_at`).
    month           date        NOT NULL,
    -- `revenue`: an approved purchase or capture (the only kind that can be a gap);
    -- `adjustment`: an approved refund or reverse (reported beside the volume);
    -- `none`: anything else (declines, verifies, preauths).
    kind            text        NOT NULL CHECK (kind IN ('revenue', 'adjustment', 'none')),
    amount_minor    bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    -- When the transaction reached the ledger: the grace period runs from here.
    stored_at       timestamptz NOT NULL,
    -- `pending`: revenue without evidence, still in its grace period; `attributed`:
    -- evidence with `is-valid-partner-token: 1`; `gap`: at risk (an open, acknowledged
    -- or expired gap); `waived`: its gap was resolved by a person; `none`: not revenue.
    verdict         text        NOT NULL
                    CHECK (verdict IN ('pending', 'attributed', 'gap', 'waived', 'none')),
    gap_class       text,
    CHECK ((verdict IN ('gap', 'waived')) = (gap_class IS NOT NULL)),
    CHECK (kind = 'revenue' OR verdict = 'none'),
    -- The evidence that decided the verdict, and how it was matched.
    evidence_id     bigint,
    match_method    text        CHECK (match_method IN ('transaction_id', 'invoice')),
    evaluated_at    timestamptz NOT NULL,
    PRIMARY KEY (account_id, transaction_id)
);

CREATE INDEX attribution_transactions_month ON attribution_transactions (month, account_id);
CREATE INDEX attribution_transactions_pending ON attribution_transactions (stored_at)
    WHERE verdict = 'pending';

-- The engine's match of every piece of evidence to a ledger transaction.
CREATE TABLE attribution_matches (
    evidence_id     bigint      PRIMARY KEY REFERENCES attribution_evidence (id),
    account_id      text,
    -- `matched` (to `transaction_id`, by `method`); `ambiguous` (several candidates,
    -- listed, none chosen); `unmatched` (no candidate yet).
    state           text        NOT NULL CHECK (state IN ('matched', 'ambiguous', 'unmatched')),
    transaction_id  bigint,
    method          text        CHECK (method IN ('transaction_id', 'invoice')),
    candidates      bigint[],
    CHECK ((state = 'matched') = (transaction_id IS NOT NULL AND method IS NOT NULL)),
    -- Evidence of an approved payment (a receipt, or an answered purchase or capture):
    -- only such evidence becomes `orphan_evidence` when it matches nothing.
    approved_payment boolean    NOT NULL,
    recorded_at     timestamptz NOT NULL,
    evaluated_at    timestamptz NOT NULL
);

CREATE INDEX attribution_matches_transaction ON attribution_matches (account_id, transaction_id)
    WHERE state = 'matched';
CREATE INDEX attribution_matches_unmatched ON attribution_matches (recorded_at)
    WHERE state = 'unmatched' AND approved_payment;

-- The gaps themselves, with their workflow.
CREATE TABLE attribution_gaps (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Null only for orphan evidence of an unregistered account (`api_token_lookup`
    -- then names the token's fingerprint).
    account_id        text,
    api_token_lookup  text,
    -- The ledger transaction; for `orphan_evidence`, the id its evidence claimed (or
    -- null when it claimed none).
    transaction_id    bigint,
    -- `orphan_evidence`: the orphaned evidence; otherwise the evidence that decided
    -- the class (null for `unattributed`).
    evidence_id       bigint      REFERENCES attribution_evidence (id),
    class             text        NOT NULL CHECK (class IN
                          ('token_rejected', 'token_missing', 'unattributed', 'orphan_evidence')),
    -- `orphan_evidence` only: `no_transaction`, `ambiguous` (several candidates, in
    -- `candidates`) or `unregistered_account`.
    reason            text        CHECK (reason IN ('no_transaction', 'ambiguous', 'unregistered_account')),
    CHECK ((class = 'orphan_evidence') = (reason IS NOT NULL)),
    candidates        bigint[],
    amount_minor      bigint,
    currency          char(3),
    CHECK (amount_minor IS NULL OR currency IS NOT NULL),
    month             date        NOT NULL,
    -- The month's close: the first instant of the next month in the close time zone.
    deadline          timestamptz NOT NULL,
    status            text        NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'acknowledged', 'resolved', 'expired')),
    -- `resolved` only: by `evidence` that arrived, or by a `person` (with a note).
    resolution        text        CHECK (resolution IN ('evidence', 'person')),
    CHECK ((status = 'resolved') = (resolution IS NOT NULL)),
    detected_at       timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK (class = 'orphan_evidence' OR (account_id IS NOT NULL AND transaction_id IS NOT NULL)),
    CHECK (class <> 'orphan_evidence' OR evidence_id IS NOT NULL),
    CHECK (account_id IS NOT NULL OR api_token_lookup IS NOT NULL)
);

-- One gap per transaction and one per orphaned evidence, whatever the number of
-- replicas computing them.
CREATE UNIQUE INDEX attribution_gaps_one_per_transaction
    ON attribution_gaps (account_id, transaction_id) WHERE class <> 'orphan_evidence';
CREATE UNIQUE INDEX attribution_gaps_one_per_evidence
    ON attribution_gaps (evidence_id) WHERE class = 'orphan_evidence';
CREATE INDEX attribution_gaps_month ON attribution_gaps (month, account_id, id);
CREATE INDEX attribution_gaps_live ON attribution_gaps (month, account_id)
    WHERE status IN ('open', 'acknowledged');

-- Every change of a gap's status or class: who, when, and why. Append-only.
CREATE TABLE attribution_gap_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gap_id       bigint      NOT NULL REFERENCES attribution_gaps (id),
    at           timestamptz NOT NULL,
    -- `engine` (detection, evidence, expiry), `api-key:<prefix>`, `reconctl`.
    actor        text        NOT NULL,
    from_status  text,
    to_status    text        NOT NULL,
    from_class   text,
    to_class     text        NOT NULL,
    note         text
);

CREATE INDEX attribution_gap_events_gap ON attribution_gap_events (gap_id, id);

CREATE FUNCTION attribution_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE TRIGGER attribution_gap_events_append_only
    BEFORE UPDATE OR DELETE ON attribution_gap_events
    FOR EACH ROW EXECUTE FUNCTION attribution_refuse_change();

-- Alerts, written in the transaction that causes them (an outbox) and published to
-- the `recon.alerts` exchange and to alert webhooks afterwards. `dedupe_key` makes an
-- alert happen once, however many replicas see its cause.
CREATE TABLE attribution_alerts (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- `gap_opened:<gap id>`, `gap_resolved:<gap id>`,
    -- `escalation:<account>:<YYYY-MM>:<seconds before the close>`, `month_closed:<YYYY-MM>`.
    dedupe_key    text        NOT NULL UNIQUE,
    kind          text        NOT NULL
                  CHECK (kind IN ('gap_opened', 'gap_resolved', 'escalation', 'month_closed')),
    account_id    text,
    month         date        NOT NULL,
    -- The `helcim_recon.v1.AttributionAlert` protobuf message, as published.
    payload       bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    published_at  timestamptz
);

CREATE INDEX attribution_alerts_unpublished ON attribution_alerts (id) WHERE published_at IS NULL;

-- Escalations as the close nears: one per account, month and threshold, ever.
CREATE TABLE attribution_escalations (
    account_id      text        NOT NULL,
    month           date        NOT NULL,
    -- The threshold: seconds before the close (604800 for T-7d, ...).
    threshold_secs  integer     NOT NULL CHECK (threshold_secs > 0),
    fired_at        timestamptz NOT NULL,
    open_gaps       integer     NOT NULL,
    -- Null when a nearer threshold had also been crossed when this one was first
    -- seen (the worker was down, or the gaps are new): only the nearest is alerted.
    alert_id        bigint      REFERENCES attribution_alerts (id),
    PRIMARY KEY (account_id, month, threshold_secs)
);

-- Where alerts are also sent as signed webhooks (Standard Webhooks, the subscriber's
-- own secret, encrypted like every other secret).
CREATE TABLE alert_webhooks (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    url               text        NOT NULL,
    secret_encrypted  bytea       NOT NULL,
    -- The accounts whose alerts it receives; null: every account.
    account_ids       text[],
    created_at        timestamptz NOT NULL DEFAULT now(),
    disabled_at       timestamptz
);

CREATE TABLE alert_webhook_deliveries (
    alert_id         bigint      NOT NULL REFERENCES attribution_alerts (id),
    webhook_id       bigint      NOT NULL REFERENCES alert_webhooks (id) ON DELETE CASCADE,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    delivered_at     timestamptz,
    PRIMARY KEY (alert_id, webhook_id)
);

CREATE INDEX alert_webhook_deliveries_due ON alert_webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- The frozen report of each closed month: the documents exactly as served, whole and
-- per account, with their SHA-256. Never updated: late evidence becomes a post-close
-- note instead.
CREATE TABLE attribution_reports (
    month       date        PRIMARY KEY,
    frozen_at   timestamptz NOT NULL
);

CREATE TABLE attribution_report_documents (
    month       date        NOT NULL REFERENCES attribution_reports (month),
    -- `*` for every account, else one account id.
    scope       text        NOT NULL,
    format      text        NOT NULL CHECK (format IN ('json', 'csv')),
    body        bytea       NOT NULL,
    sha256      text        NOT NULL,
    PRIMARY KEY (month, scope, format)
);

CREATE TRIGGER attribution_report_documents_append_only
    BEFORE UPDATE OR DELETE ON attribution_report_documents
    FOR EACH ROW EXECUTE FUNCTION attribution_refuse_change();

-- What happened after a month closed to a gap of that month (evidence that would have
-- resolved it): shown beside the frozen report, never in it.
CREATE TABLE attribution_post_close_notes (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month        date        NOT NULL,
    account_id   text,
    gap_id       bigint      NOT NULL REFERENCES attribution_gaps (id),
    evidence_id  bigint      REFERENCES attribution_evidence (id),
    at           timestamptz NOT NULL,
    note         text        NOT NULL,
    UNIQUE (gap_id, evidence_id)
);
