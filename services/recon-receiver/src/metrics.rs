//! Prometheus metrics: requests by outcome and account, events by type, and the
//! verify and publish latencies.

use metrics_exporter_prometheus::PrometheusHandle;

pub const REQUESTS: &str = "receiver_requests_total";
pub const EVENTS: &str = "receiver_events_total";
pub const VERIFY_SECONDS: &str = "receiver_verify_seconds";
pub const PUBLISH_SECONDS: &str = "receiver_publish_seconds";
/// Per registered account: active verifier tokens that do not decrypt here (set on
/// every refresh).
pub const SECRETS_UNREADABLE: &str = "receiver_account_secrets_unreadable";
/// Per registered account and direction (`old`, `future`): signed deliveries refused
/// because `webhook-timestamp` was more than 300 s away. What they announced must be
/// found by the completeness sweep (docs/security.md).
pub const STALE_TIMESTAMPS: &str = "receiver_stale_timestamps_total";

/// Installs the process-wide recorder (shared with every service).
pub fn install() -> PrometheusHandle {
    recon_common::metrics::install()
}

/// Counts one request. `account` must be a registered account id (or `unknown`):
/// the id in the URL is caller-chosen and never becomes a label by itself.
pub fn request(account: &str, outcome: &'static str) {
    metrics::counter!(REQUESTS, "account" => account.to_string(), "outcome" => outcome)
        .increment(1);
}
