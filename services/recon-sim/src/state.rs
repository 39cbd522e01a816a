//! What the running simulator holds: the generated activity, the ledger that grows
//! with run-time payments, the rate limiter, the fault switches, the idempotency keys
//! and the counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Transaction};
use crate::api::idempotency::IdempotencyStore;
use crate::clock::{BatchClosing, SimClock};
use crate::faults::{ApiFault, Faults};
use crate::ledger::Ledger;
use crate::limits::{AccountLimiter, RateLimits};
use crate::render;
use crate::settings::{PartnerAnswer, PaymentSettings};
use crate::webhooks::{DeliveryLog, LiveEvent, LiveWebhooks, WebhookConfig, deliver, live, plan};

/// Who an `api-token` belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Account(String),
    /// A valid token without read permission.
    NoAccess(String),
    Unknown,
}

/// The simulator's shared state.
#[derive(Debug)]
pub struct SimState {
    /// What was generated at start; never changes. The API serves [`SimState::ledger`],
    /// which starts as a copy of this and grows with run-time payments.
    pub activity: Activity,
    pub seed: u64,
    /// What dates run-time transactions and closes batches.
    pub clock: Arc<SimClock>,
    pub limiter: Arc<AccountLimiter>,
    pub deliveries: Arc<DeliveryLog>,
    pub payments: PaymentSettings,
    ledger: RwLock<Ledger>,
    pub(crate) idempotency: Mutex<IdempotencyStore>,
    live: LiveWebhooks,
    webhooks: Option<WebhookConfig>,
    deliveries_started: AtomicBool,
    started: watch::Sender<bool>,
    /// Cancelled when the simulator stops: ends webhook delivery.
    pub shutdown: CancellationToken,
    faults: Mutex<Faults>,
    rng: Mutex<ChaCha8Rng>,
    api_statuses: Mutex<BTreeMap<u16, u64>>,
    partner_answers: Mutex<PartnerCounts>,
    /// Run-time traffic and injections (`POST /sim/.../traffic`, `/sim/inject`).
    pub(crate) traffic: Mutex<crate::traffic::TrafficState>,
}

/// API request counts by status, for `/sim/stats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiStats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
}

/// Requests to partner-program endpoints by the `is-valid-partner-token` they got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerCounts {
    /// Answered `1`.
    pub valid: u64,
    /// Answered `0` although a token was sent.
    pub invalid: u64,
    /// No token sent (answered `0` or no header, as configured).
    pub absent: u64,
}

impl SimState {
    pub fn new(
        activity: Activity,
        seed: u64,
        limits: RateLimits,
        faults: Faults,
        webhooks: Option<WebhookConfig>,
    ) -> Self {
        Self::with_payments(
            activity,
            seed,
            limits,
            faults,
            webhooks,
            PaymentSettings::default(),
        )
    }

    pub fn with_payments(
        activity: Activity,
        seed: u64,
        limits: RateLimits,
        faults: Faults,
        webhooks: Option<WebhookConfig>,
        payments: PaymentSettings,
    ) -> Self {
        let ledger = Ledger::new(activity.clone(), seed);
        SimState {
            activity,
            seed,
            clock: Arc::new(SimClock::default()),
            limiter: AccountLimiter::new(limits),
            deliveries: Arc::new(DeliveryLog::default()),
            idempotency: Mutex::new(IdempotencyStore::new(payments.idempotency_ttl)),
            payments,
            ledger: RwLock::new(ledger),
            live: LiveWebhooks::default(),
            webhooks,
            deliveries_started: AtomicBool::new(false),
            started: watch::channel(false).0,
            shutdown: CancellationToken::new(),
            faults: Mutex::new(faults),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x00FA_0175)),
            api_statuses: Mutex::new(BTreeMap::new()),
            partner_answers: Mutex::new(PartnerCounts::default()),
            traffic: Mutex::new(crate::traffic::TrafficState::default()),
        }
    }

    /// Runs on `clock` and closes batches as `closing` says (before serving).
    pub fn set_time(&mut self, clock: SimClock, closing: Option<BatchClosing>) {
        self.clock = Arc::new(clock);
        let clock = Arc::clone(&self.clock);
        self.ledger_mut().set_time(clock, closing);
    }

    /// Closes the batches whose time has come (cheap when none has).
    pub fn tick(&self) {
        let now = self.clock.now();
        if self.ledger().closes_due(now) {
            let closed = self.ledger_mut().close_due_batches(now);
            if closed > 0 {
                tracing::debug!(closed, %now, "card batches closed");
            }
        }
    }

    /// The books as they stand now (generated and run-time).
    pub fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().expect("lock poisoned")
    }

    pub(crate) fn ledger_mut(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().expect("lock poisoned")
    }

    /// Starts the task that sends run-time webhooks (they wait for
    /// [`SimState::start_deliveries`]). Needs a Tokio runtime; only the first call
    /// starts anything.
    pub fn spawn_live_webhooks(self: &Arc<Self>) {
        let Some(config) = self.webhooks.clone() else {
            return;
        };
        let Some(events) = self.live.take_receiver() else {
            return;
        };
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let faults = {
                let state = Arc::clone(&state);
                move || state.faults().webhooks
            };
            live::run(
                events,
                Arc::clone(&state.deliveries),
                config,
                state.started.subscribe(),
                state.shutdown.clone(),
                state.seed,
                faults,
            )
            .await;
        });
    }

    /// Queues a webhook for something that happened at run time (nothing without a
    /// webhook URL).
    pub fn announce(&self, event: LiveEvent) {
        if self.webhooks.is_some() {
            self.live.send(event);
        }
    }

    /// The `cardTransaction` event for a transaction of the ledger.
    pub fn card_transaction_event(ledger: &Ledger, tx: &Transaction) -> LiveEvent {
        LiveEvent {
            account_id: tx.account_id.clone(),
            event_type: "cardTransaction",
            transaction_id: Some(tx.transaction_id),
            body: render::card_transaction_webhook(tx),
            verifier_tokens: ledger
                .activity
                .account(&tx.account_id)
                .map(|a| a.verifier_tokens.clone())
                .unwrap_or_default(),
        }
    }

    /// Plans the webhooks (applying the webhook faults set now) and starts sending
    /// them in the background. Only the first call starts anything.
    pub fn start_deliveries(self: &Arc<Self>) -> Result<bool, &'static str> {
        let Some(config) = self.webhooks.clone() else {
            return Err("no webhook URL is configured: start recon-sim with --webhook-url");
        };
        if self.deliveries_started.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        self.started.send_replace(true);
        let plan = plan::plan(&self.activity, &self.faults().webhooks, self.seed);
        tracing::info!(
            deliveries = plan.deliveries.len(),
            dropped = plan.dropped.len(),
            url = %config.url_template,
            "delivering webhooks"
        );
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let log = Arc::clone(&state.deliveries);
            deliver::run(
                log,
                &state.activity.accounts,
                plan,
                config,
                state.shutdown.clone(),
            )
            .await;
            tracing::info!(summary = ?state.deliveries.summary(), "webhook delivery finished");
        });
        Ok(true)
    }

    pub fn caller(&self, token: Option<&str>) -> Caller {
        self.ledger().caller(token)
    }

    /// One transaction of the account, unless it is hidden.
    pub fn visible_transaction(&self, account_id: &str, id: u64) -> Option<Transaction> {
        let hidden = self
            .faults
            .lock()
            .expect("lock poisoned")
            .api
            .hidden_transaction_ids
            .contains(&id);
        if hidden {
            return None;
        }
        self.ledger().transaction_of(account_id, id).cloned()
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().expect("lock poisoned").clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("lock poisoned") = faults;
    }

    /// Changes the faults in place (e.g. reveal one hidden transaction).
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().expect("lock poisoned"));
    }

    pub fn decide_api_fault(&self) -> ApiFault {
        let mut faults = self.faults.lock().expect("lock poisoned");
        let mut rng = self.rng.lock().expect("lock poisoned");
        faults.api.decide(&mut *rng)
    }

    pub fn record_status(&self, status: u16) {
        *self
            .api_statuses
            .lock()
            .expect("lock poisoned")
            .entry(status)
            .or_default() += 1;
    }

    pub fn record_partner_answer(&self, answer: PartnerAnswer) {
        let mut counts = self.partner_answers.lock().expect("lock poisoned");
        match (answer.sent, answer.header) {
            (false, _) => counts.absent += 1,
            (true, Some(1)) => counts.valid += 1,
            (true, _) => counts.invalid += 1,
        }
    }

    pub fn partner_counts(&self) -> PartnerCounts {
        *self.partner_answers.lock().expect("lock poisoned")
    }

    pub fn api_stats(&self) -> ApiStats {
        let by_status = self.api_statuses.lock().expect("lock poisoned").clone();
        ApiStats {
            requests: by_status.values().sum(),
            by_status,
        }
    }
}
