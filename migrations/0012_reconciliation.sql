-- Reconciliation: an append-only double-entry journal, settlement verdicts for card
-- batches, exceptions with a workflow, and a record of every sweep.
--
-- The journal's rules are enforced here, not only in code: every entry's lines sum to
-- zero per currency (checked at commit, so an entry and its lines go in together), an
-- entry has at least two lines, a correction is the exact negation of the entry it
-- reverses, and nothing in the journal is ever updated, deleted or truncated.

-- The chart of accounts, one set per merchant account and currency.
CREATE TABLE journal_accounts (
    code            text PRIMARY KEY,
    name            text NOT NULL,
    normal_balance  text NOT NULL CHECK (normal_balance IN ('debit', 'credit')),
    description     text NOT NULL
);

INSERT INTO journal_accounts (code, name, normal_balance, description) VALUES
    ('card_clearing', 'Card clearing', 'debit',
     'Card money Helcim owes for transactions whose batch has not settled yet'),
    ('sales', 'Card sales', 'credit',
     'Approved purchases and captures'),
    ('refunds', 'Refunds', 'debit',
     'Approved refunds (contra-revenue)'),
    ('sales_reversed', 'Reversed sales', 'debit',
     'Approved reverses of a purchase or capture (contra-revenue)'),
    ('refunds_reversed', 'Reversed refunds', 'credit',
     'Approved reverses of a refund'),
    ('settlement_receivable', 'Settlement receivable', 'debit',
     'Net of closed batches, owed by Helcim until deposited');

CREATE TABLE journal_entries (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the merchant account whose books these are
    account_id         text        NOT NULL,
    kind               text        NOT NULL CHECK (kind IN (
                           'sale', 'refund', 'sale_reversed', 'refund_reversed',
                           'settlement', 'correction')),
    transaction_id     bigint,
    card_batch_id      bigint,
    -- a correction names the entry it reverses; an entry is reversed at most once
    reverses_entry_id  bigint UNIQUE REFERENCES journal_entries (id),
    -- when the money moved: the transaction's time, or the batch's close
    effective_at       timestamptz NOT NULL,
    -- when the journal learnt it
    posted_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    memo               text        NOT NULL,
    CHECK ((kind = 'correction') = (reverses_entry_id IS NOT NULL)),
    CHECK (kind <> 'settlement' OR card_batch_id IS NOT NULL),
    CHECK (kind IN ('settlement', 'correction') OR transaction_id IS NOT NULL)
);

CREATE INDEX journal_entries_transaction ON journal_entries (account_id, transaction_id)
    WHERE transaction_id IS NOT NULL;
CREATE INDEX journal_entries_batch ON journal_entries (account_id, card_batch_id)
    WHERE card_batch_id IS NOT NULL;
CREATE INDEX journal_entries_posted ON journal_entries (account_id, posted_at, id);

-- Signed amounts: debits positive, credits negative.
CREATE TABLE journal_lines (
    entry_id        bigint   NOT NULL REFERENCES journal_entries (id),
    line_no         smallint NOT NULL CHECK (line_no >= 1),
    ledger_account  text     NOT NULL REFERENCES journal_accounts (code),
    currency        char(3)  NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor    bigint   NOT NULL CHECK (amount_minor <> 0),
    PRIMARY KEY (entry_id, line_no)
);

CREATE INDEX journal_lines_account ON journal_lines (ledger_account, currency);

CREATE FUNCTION journal_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT currency, sum(amount_minor) AS total INTO unbalanced
    FROM journal_lines WHERE entry_id = NEW.entry_id
    GROUP BY currency HAVING sum(amount_minor) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: its % lines sum to % (minor units)',
            NEW.entry_id, unbalanced.currency, unbalanced.total
            USING ERRCODE = 'check_violation',
                  HINT = 'every entry''s debits (positive) and credits (negative) must sum to zero per currency';
    END IF;
    RETURN NULL;
END
$$;

-- Deferred: the lines of one entry go in one by one and balance only together.
CREATE CONSTRAINT TRIGGER journal_lines_balance
    AFTER INSERT ON journal_lines
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal_entry_balances();

CREATE FUNCTION journal_entry_complete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lines integer;
    mismatched integer;
BEGIN
    SELECT count(*) INTO lines FROM journal_lines WHERE entry_id = NEW.id;
    IF lines < 2 THEN
        RAISE EXCEPTION 'journal entry % has % line(s); an entry needs at least two', NEW.id, lines
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.reverses_entry_id IS NOT NULL THEN
        -- A correction is the reversed entry's lines with every sign flipped.
        SELECT count(*) INTO mismatched FROM (
            (SELECT ledger_account, currency, -amount_minor AS amount_minor
               FROM journal_lines WHERE entry_id = NEW.reverses_entry_id
             EXCEPT ALL
             SELECT ledger_account, currency, amount_minor
               FROM journal_lines WHERE entry_id = NEW.id)
            UNION ALL
            (SELECT ledger_account, currency, amount_minor
               FROM journal_lines WHERE entry_id = NEW.id
             EXCEPT ALL
             SELECT ledger_account, currency, -amount_minor
               FROM journal_lines WHERE entry_id = NEW.reverses_entry_id)
        ) AS difference;
        IF mismatched > 0 THEN
            RAISE EXCEPTION 'journal entry % is a correction of entry % but is not its exact reversal',
                NEW.id, NEW.reverses_entry_id
                USING ERRCODE = 'check_violation';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM journal_entries r WHERE r.id = NEW.reverses_entry_id
                       AND r.account_id = NEW.account_id) THEN
            RAISE EXCEPTION 'journal entry % reverses entry % of another account',
                NEW.id, NEW.reverses_entry_id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER journal_entries_complete
    AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal_entry_complete();

CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'correct an entry by posting its reversal and a new entry';
END
$$;

CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_lines_no_truncate BEFORE TRUNCATE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();

-- Settlement verdicts: each batch's ledger totals against Helcim's stats.
CREATE TABLE batch_settlements (
    account_id                     text        NOT NULL,
    card_batch_id                  bigint      NOT NULL,
    verdict                        text        NOT NULL CHECK (verdict IN ('open', 'balanced', 'mismatch')),
    currency                       char(3),
    -- what the ledger's transactions in the batch add up to
    ledger_count                   bigint      NOT NULL,
    ledger_sales_minor             bigint      NOT NULL,
    ledger_refunds_minor           bigint      NOT NULL,
    ledger_reversed_minor          bigint      NOT NULL,
    ledger_refunds_reversed_minor  bigint      NOT NULL,
    ledger_net_minor               bigint      NOT NULL,
    -- what Helcim's stats say (null while the batch is open)
    helcim_count                   bigint,
    helcim_sales_minor             bigint,
    helcim_refunds_minor           bigint,
    helcim_reversed_minor          bigint,
    helcim_refunds_reversed_minor  bigint,
    helcim_net_minor               bigint,
    -- helcim net minus ledger net; the bridge's amounts sum to it
    difference_minor               bigint      NOT NULL DEFAULT 0,
    -- [{"transactionId", "reason", "amount" (minor units, signed), ...}]
    bridge                         jsonb       NOT NULL DEFAULT '[]',
    closed_at                      timestamptz,
    -- when Helcim's transactions of the closed batch were listed by cardBatchId
    transactions_listed_at         timestamptz,
    verified_at                    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, card_batch_id),
    CHECK (verdict = 'open' OR helcim_net_minor IS NOT NULL)
);

CREATE INDEX batch_settlements_verdict ON batch_settlements (account_id, verdict);

-- Exceptions: what a person must look at, with a workflow.
CREATE TABLE reconciliation_exceptions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       text        NOT NULL,
    class            text        NOT NULL CHECK (class IN (
                         'missed_webhook', 'missing_in_api', 'batch_mismatch', 'amount_changed',
                         'status_changed', 'batch_changed', 'currency_mismatch',
                         'duplicate_suspect', 'orphan_refund', 'unknown_status')),
    transaction_id   bigint,
    card_batch_id    bigint,
    -- one exception per cause: the same cause seen again finds its row
    dedupe_key       text        NOT NULL,
    summary          text        NOT NULL,
    evidence         jsonb       NOT NULL,
    amount_minor     bigint,
    currency         char(3),
    status           text        NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'acknowledged', 'resolved')),
    -- `person` (with a note) or `cleared` (the cause went away by itself)
    resolution       text        CHECK (resolution IN ('person', 'cleared')),
    note             text,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    UNIQUE (account_id, dedupe_key),
    CHECK (transaction_id IS NOT NULL OR card_batch_id IS NOT NULL),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL AND resolution IS NOT NULL)),
    CHECK (status = 'open' OR status = 'resolved' OR acknowledged_at IS NOT NULL)
);

CREATE INDEX reconciliation_exceptions_list
    ON reconciliation_exceptions (account_id, status, class, id);
CREATE INDEX reconciliation_exceptions_transaction
    ON reconciliation_exceptions (account_id, transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX reconciliation_exceptions_batch
    ON reconciliation_exceptions (account_id, card_batch_id) WHERE card_batch_id IS NOT NULL;

CREATE TABLE reconciliation_exception_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exception_id  bigint      NOT NULL REFERENCES reconciliation_exceptions (id),
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- `system`, or who acted (`reconctl`, `api-key:<prefix>`)
    actor         text        NOT NULL,
    action        text        NOT NULL CHECK (action IN (
                      'raised', 'acknowledged', 'resolved', 'cleared', 'reopened')),
    from_status   text,
    to_status     text        NOT NULL,
    note          text
);

CREATE INDEX reconciliation_exception_events_exception
    ON reconciliation_exception_events (exception_id, id);

CREATE FUNCTION reconciliation_exception_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation_exception_events is an audit trail: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER reconciliation_exception_events_append_only
    BEFORE UPDATE OR DELETE ON reconciliation_exception_events
    FOR EACH ROW EXECUTE FUNCTION reconciliation_exception_events_append_only();

-- How a transaction first reached the ledger: announced by a webhook, or found by a
-- sweep or a backfill (no webhook announced it).
ALTER TABLE card_transactions
    ADD COLUMN discovered_by text NOT NULL DEFAULT 'webhook'
        CHECK (discovered_by IN ('webhook', 'sweep', 'backfill'));

-- Every sweep, for operators and the benchmark: what it listed, what it changed, and
-- the Helcim calls it spent.
CREATE TABLE sweep_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('completeness', 'batches', 'backfill')),
    -- Mountain Time dates listed (completeness and backfill)
    window_from   date,
    window_to     date,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    api_calls     integer     NOT NULL DEFAULT 0,
    listed        integer     NOT NULL DEFAULT 0,
    recorded      integer     NOT NULL DEFAULT 0,
    corrected     integer     NOT NULL DEFAULT 0,
    exceptions    integer     NOT NULL DEFAULT 0,
    batches_closed integer    NOT NULL DEFAULT 0,
    -- null while running; `ok` or why it failed
    outcome       text
);

CREATE INDEX sweep_runs_recent ON sweep_runs (account_id, kind, started_at DESC);
