//! Sends the plan: each webhook signed at send time, paced, a bounded number in
//! flight, and retried with exponential backoff on a non-2xx answer or a network
//! failure, as Helcim retries for hours after a failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::plan::{Plan, PlannedDelivery};
use super::sign::signature_header;
use crate::activity::Account;

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The receiver URL; `{account_id}` is replaced by the account's id.
    pub url_template: String,
    /// Events started per second; `None` sends as fast as `concurrency` allows.
    pub rate_per_second: Option<u32>,
    pub concurrency: usize,
    pub max_attempts: u32,
    /// First retry delay, doubling up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
    /// Send each account an unsigned, event-less probe first, as Helcim does when a
    /// merchant saves the webhook settings.
    pub probe: bool,
}

impl WebhookConfig {
    pub fn new(url_template: impl Into<String>) -> Self {
        WebhookConfig {
            url_template: url_template.into(),
            rate_per_second: None,
            concurrency: 16,
            max_attempts: 10,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            timeout: Duration::from_secs(15),
            probe: true,
        }
    }

    pub fn url_for(&self, account_id: &str) -> String {
        self.url_template.replace("{account_id}", account_id)
    }
}

/// The fate of one planned delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub webhook_id: String,
    pub account_id: String,
    pub event_type: &'static str,
    pub transaction_id: Option<u64>,
    pub duplicate: bool,
    pub attempts: u32,
    pub delivered: bool,
    pub gave_up: bool,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// Counts for `/sim/stats` and `make run`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySummary {
    pub started: bool,
    pub finished: bool,
    pub planned: usize,
    pub dropped: usize,
    pub duplicates: usize,
    pub delivered: usize,
    pub failed_attempts: u64,
    pub gave_up: usize,
    pub pending: usize,
    pub probes_sent: usize,
    /// Events made at run time (payments, checkouts, terminals, connected accounts),
    /// sent as they happen once deliveries have started.
    pub live: usize,
}

impl DeliveryRecord {
    fn pending(d: &PlannedDelivery) -> Self {
        DeliveryRecord {
            webhook_id: d.webhook_id.clone(),
            account_id: d.account_id.clone(),
            event_type: d.event_type,
            transaction_id: d.transaction_id,
            duplicate: d.duplicate,
            attempts: 0,
            delivered: false,
            gave_up: false,
            last_status: None,
            last_error: None,
        }
    }
}

/// What has been sent so far.
#[derive(Debug)]
pub struct DeliveryLog {
    records: Mutex<Vec<DeliveryRecord>>,
    dropped: Mutex<Vec<PlannedDelivery>>,
    summary: Mutex<DeliverySummary>,
    finished: watch::Sender<bool>,
}

impl Default for DeliveryLog {
    fn default() -> Self {
        DeliveryLog {
            records: Mutex::new(Vec::new()),
            dropped: Mutex::new(Vec::new()),
            summary: Mutex::new(DeliverySummary::default()),
            finished: watch::channel(false).0,
        }
    }
}

impl DeliveryLog {
    pub fn records(&self) -> Vec<DeliveryRecord> {
        self.records.lock().expect("lock poisoned").clone()
    }

    /// Events the plan dropped: never sent.
    pub fn dropped(&self) -> Vec<PlannedDelivery> {
        self.dropped.lock().expect("lock poisoned").clone()
    }

    pub fn summary(&self) -> DeliverySummary {
        let mut summary = self.summary.lock().expect("lock poisoned").clone();
        let records = self.records.lock().expect("lock poisoned");
        summary.delivered = records.iter().filter(|r| r.delivered).count();
        summary.gave_up = records.iter().filter(|r| r.gave_up).count();
        summary.pending = records.len() - summary.delivered - summary.gave_up;
        summary
    }

    /// Resolves once every planned delivery was delivered or given up on.
    pub async fn wait_finished(&self) {
        let mut finished = self.finished.subscribe();
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Adds the plan's deliveries; returns the index of the first one's record.
    fn begin(&self, plan: &Plan) -> usize {
        let offset = {
            let mut records = self.records.lock().expect("lock poisoned");
            let offset = records.len();
            records.extend(plan.deliveries.iter().map(DeliveryRecord::pending));
            offset
        };
        self.dropped
            .lock()
            .expect("lock poisoned")
            .extend(plan.dropped.iter().cloned());
        let mut summary = self.summary.lock().expect("lock poisoned");
        summary.started = true;
        summary.planned = plan.deliveries.len();
        summary.dropped += plan.dropped.len();
        summary.duplicates += plan.deliveries.iter().filter(|d| d.duplicate).count();
        offset
    }

    /// Adds one run-time delivery; returns the index of its record.
    pub(super) fn push_live(&self, delivery: &PlannedDelivery) -> usize {
        let mut records = self.records.lock().expect("lock poisoned");
        records.push(DeliveryRecord::pending(delivery));
        let mut summary = self.summary.lock().expect("lock poisoned");
        summary.live += 1;
        summary.duplicates += usize::from(delivery.duplicate);
        records.len() - 1
    }

    /// Notes a run-time event the webhook faults dropped.
    pub(super) fn push_dropped(&self, delivery: PlannedDelivery) {
        self.dropped.lock().expect("lock poisoned").push(delivery);
        self.summary.lock().expect("lock poisoned").dropped += 1;
    }

    fn record(&self, index: usize, outcome: Result<u16, String>, last_attempt: bool) {
        let mut records = self.records.lock().expect("lock poisoned");
        let record = &mut records[index];
        record.attempts += 1;
        match outcome {
            Ok(status) => {
                record.last_status = Some(status);
                record.delivered = (200..300).contains(&status);
            }
            Err(error) => record.last_error = Some(error),
        }
        if !record.delivered {
            self.summary.lock().expect("lock poisoned").failed_attempts += 1;
            record.gave_up = last_attempt;
        }
    }
}

/// Delivers `plan` until done or cancelled.
pub async fn run(
    log: Arc<DeliveryLog>,
    accounts: &[Account],
    plan: Plan,
    config: WebhookConfig,
    cancel: CancellationToken,
) {
    let offset = log.begin(&plan);
    let client = http_client(&config);
    let tokens: Arc<HashMap<String, Vec<String>>> = Arc::new(
        accounts
            .iter()
            .map(|a| (a.account_id.clone(), a.verifier_tokens.clone()))
            .collect(),
    );
    if config.probe {
        for account in accounts {
            let sent = client
                .post(config.url_for(&account.account_id))
                .body("{}")
                .send()
                .await;
            tracing::info!(account = %account.account_id, ok = sent.is_ok(), "sent the webhook-settings probe");
            log.summary.lock().expect("lock poisoned").probes_sent += 1;
        }
    }
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut ticker = config
        .rate_per_second
        .filter(|r| *r > 0)
        .map(|rate| tokio::time::interval(Duration::from_secs(1) / rate));
    let mut tasks = JoinSet::new();
    for (index, delivery) in plan.deliveries.into_iter().enumerate() {
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = cancel.cancelled() => break,
            }
        }
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
            _ = cancel.cancelled() => break,
        };
        let attempt = Attempt {
            client: client.clone(),
            log: Arc::clone(&log),
            tokens: Arc::clone(&tokens),
            slots: Arc::clone(&slots),
            config: config.clone(),
            cancel: cancel.clone(),
        };
        tasks.spawn(attempt.deliver(offset + index, delivery, Some(permit)));
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    log.summary.lock().expect("lock poisoned").finished = true;
    log.finished.send_replace(true);
}

pub(super) fn http_client(config: &WebhookConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .build()
        .expect("a plain HTTP client builds")
}

/// Delivers one event, retrying, and notes each attempt in the log.
pub(super) struct Attempt {
    pub client: reqwest::Client,
    pub log: Arc<DeliveryLog>,
    /// Verifier tokens by account.
    pub tokens: Arc<HashMap<String, Vec<String>>>,
    pub slots: Arc<Semaphore>,
    pub config: WebhookConfig,
    pub cancel: CancellationToken,
}

impl Attempt {
    /// Delivers `delivery` (record `index`), holding back `delay_ms` first without
    /// occupying a slot; `first` is a slot already taken, if any.
    pub(super) async fn deliver(
        self,
        index: usize,
        delivery: PlannedDelivery,
        first: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let mut permit = first;
        if delivery.delay_ms > 0 {
            permit = None;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delivery.delay_ms)) => {}
                _ = self.cancel.cancelled() => return,
            }
        }
        for attempt in 1..=self.config.max_attempts.max(1) {
            let slot = match permit.take() {
                Some(slot) => slot,
                None => Arc::clone(&self.slots)
                    .acquire_owned()
                    .await
                    .expect("never closed"),
            };
            let outcome = self.send(&delivery).await;
            drop(slot);
            let delivered = matches!(outcome, Ok(status) if (200..300).contains(&status));
            let last = attempt == self.config.max_attempts.max(1);
            self.log.record(index, outcome, last);
            if delivered || last {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.backoff(attempt)) => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }

    async fn send(&self, delivery: &PlannedDelivery) -> Result<u16, String> {
        let timestamp = chrono::Utc::now().timestamp();
        let tokens = self
            .tokens
            .get(&delivery.account_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let signature = signature_header(
            tokens,
            &delivery.webhook_id,
            timestamp,
            delivery.body.as_bytes(),
        )
        .map_err(|e| format!("verifier token is not base64: {e}"))?;
        self.client
            .post(self.config.url_for(&delivery.account_id))
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// Doubling from `retry_base`, capped at `retry_max`, with ±20 % jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .config
            .retry_base
            .saturating_mul(1 << attempt.saturating_sub(1).min(20));
        let capped = doubled.min(self.config.retry_max);
        capped.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}
