//! Prometheus metrics: requests by outcome and account, events by type, and the
//! verify and publish latencies.

use metrics_exporter_prometheus::PrometheusHandle;

pub const REQUESTS: &str = "receiver_requests_total";
pub const EVENTS: &str = "receiver_events_total";
pub const VERIFY_SECONDS: &str = "receiver_verify_seconds";
pub const PUBLISH_SECONDS: &str = "receiver_publish_seconds";

/// Installs the process-wide recorder (shared with every service).
pub fn install() -> PrometheusHandle {
    recon_common::metrics::install()
}

/// Counts one request. Unknown account ids are caller-chosen, so they are counted
/// under `unknown` rather than given a label each.
pub fn request(account: &str, outcome: &'static str) {
    metrics::counter!(REQUESTS, "account" => account.to_string(), "outcome" => outcome)
        .increment(1);
}
