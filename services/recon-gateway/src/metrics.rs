//! Prometheus metrics. Labels are the endpoint names of [`crate::endpoint`] (or
//! `other`), outcomes and answers: never a path, a token, an account's API token or
//! anything from a body.

use metrics_exporter_prometheus::PrometheusHandle;

/// Requests forwarded, by `endpoint` and `outcome` (`2xx`, `3xx`, `4xx`, `5xx`: what
/// Helcim answered; `unreachable`, `timeout`: no answer; `too_large`: refused here).
pub const REQUESTS: &str = "gateway_requests_total";
/// Helcim's `is-valid-partner-token` answers, by `endpoint` and `answer` (`1`, `0`,
/// `absent`, `unexpected`).
pub const PARTNER_TOKEN_ANSWERS: &str = "gateway_partner_token_answers_total";
/// Partner tokens added by the gateway, by `endpoint` and `source` (`account`,
/// `referrer`, `default`); requests that lacked one and got none count as `none`.
pub const PARTNER_TOKENS_ADDED: &str = "gateway_partner_tokens_added_total";
/// What the gateway adds to a request's time: everything but waiting for Helcim.
pub const ADDED_SECONDS: &str = "gateway_added_seconds";
/// Helcim's own time, as the gateway sees it.
pub const UPSTREAM_SECONDS: &str = "gateway_upstream_seconds";
/// Building a payment's evidence and appending it to the spool: the part of
/// [`ADDED_SECONDS`] that is bookkeeping (a slow spool volume shows here first).
pub const SPOOL_APPEND_SECONDS: &str = "gateway_spool_append_seconds";
/// Evidence records in the spool not yet committed to Postgres.
pub const SPOOL_DEPTH: &str = "gateway_spool_depth";
/// Evidence records held in memory because the spool could not be written.
pub const EVIDENCE_IN_MEMORY: &str = "gateway_evidence_in_memory";
/// Failed spool writes or fsyncs (each puts evidence at risk: alert on any).
pub const SPOOL_WRITE_FAILURES: &str = "gateway_spool_write_failures_total";
/// Evidence dropped: spool failing and memory queue full (alert on any).
pub const EVIDENCE_DROPPED: &str = "gateway_evidence_dropped_total";
/// Spooled records that could not be read back (torn by a crash mid-write).
pub const SPOOL_UNREADABLE: &str = "gateway_spool_unreadable_total";
/// Records committed to Postgres.
pub const EVIDENCE_COMMITTED: &str = "gateway_evidence_committed_total";
/// Failed batch writes to Postgres (retried).
pub const EVIDENCE_WRITE_FAILURES: &str = "gateway_evidence_write_failures_total";
/// Records Postgres refused for what they hold, set aside in `rejected.jsonl` in the
/// spool directory (alert on any).
pub const EVIDENCE_REJECTED: &str = "gateway_evidence_rejected_total";
pub const EVIDENCE_WRITE_SECONDS: &str = "gateway_evidence_write_seconds";
/// Accounts known by API-token fingerprint (set on every refresh).
pub const ACCOUNTS: &str = "gateway_accounts";
/// Seconds since the accounts were last read from Postgres.
pub const ACCOUNTS_AGE_SECONDS: &str = "gateway_accounts_age_seconds";
/// Failed reads of the accounts (stale ones are served meanwhile).
pub const ACCOUNT_REFRESH_FAILURES: &str = "gateway_account_refresh_failures_total";
/// Payment requests whose API token is no registered account's (evidence kept under
/// its fingerprint).
pub const UNREGISTERED: &str = "gateway_unregistered_token_requests_total";

/// Installs the process-wide recorder (shared with every service).
pub fn install() -> PrometheusHandle {
    recon_common::metrics::install()
}

/// The outcome label of an answered request.
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "1xx",
    }
}
