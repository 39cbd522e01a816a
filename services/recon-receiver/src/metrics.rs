//! Prometheus metrics: requests by outcome and account, events by type, and the
//! verify and publish latencies.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "receiver_requests_total";
pub const EVENTS: &str = "receiver_events_total";
pub const VERIFY_SECONDS: &str = "receiver_verify_seconds";
pub const PUBLISH_SECONDS: &str = "receiver_publish_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("the bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

/// Counts one request. Unknown account ids are caller-chosen, so they are counted
/// under `unknown` rather than given a label each.
pub fn request(account: &str, outcome: &'static str) {
    metrics::counter!(REQUESTS, "account" => account.to_string(), "outcome" => outcome)
        .increment(1);
}
