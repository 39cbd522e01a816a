//! What the running simulator holds: the generated activity with its indexes, the
//! rate limiter, the fault switches and the counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Transaction};
use crate::faults::{ApiFault, Faults};
use crate::limits::{AccountLimiter, RateLimits};
use crate::webhooks::{DeliveryLog, WebhookConfig, deliver, plan};

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
    pub activity: Activity,
    pub seed: u64,
    pub limiter: Arc<AccountLimiter>,
    pub deliveries: Arc<DeliveryLog>,
    webhooks: Option<WebhookConfig>,
    deliveries_started: AtomicBool,
    /// Cancelled when the simulator stops: ends webhook delivery.
    pub shutdown: CancellationToken,
    by_token: HashMap<String, Caller>,
    /// Each account's transactions, as indexes into `activity.transactions`.
    by_account: HashMap<String, Vec<usize>>,
    faults: Mutex<Faults>,
    rng: Mutex<ChaCha8Rng>,
    api_statuses: Mutex<BTreeMap<u16, u64>>,
}

/// API request counts by status, for `/sim/stats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiStats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
}

impl SimState {
    pub fn new(
        activity: Activity,
        seed: u64,
        limits: RateLimits,
        faults: Faults,
        webhooks: Option<WebhookConfig>,
    ) -> Self {
        let mut by_token = HashMap::new();
        for account in &activity.accounts {
            by_token.insert(
                account.api_token.clone(),
                Caller::Account(account.account_id.clone()),
            );
            by_token.insert(
                account.no_access_token.clone(),
                Caller::NoAccess(account.account_id.clone()),
            );
        }
        let mut by_account: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, tx) in activity.transactions.iter().enumerate() {
            by_account
                .entry(tx.account_id.clone())
                .or_default()
                .push(index);
        }
        SimState {
            activity,
            seed,
            limiter: AccountLimiter::new(limits),
            deliveries: Arc::new(DeliveryLog::default()),
            webhooks,
            deliveries_started: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            by_token,
            by_account,
            faults: Mutex::new(faults),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x00FA_0175)),
            api_statuses: Mutex::new(BTreeMap::new()),
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
        token
            .and_then(|t| self.by_token.get(t))
            .cloned()
            .unwrap_or(Caller::Unknown)
    }

    /// The account's transactions Helcim would show (hidden ones left out), in id order.
    pub fn visible_transactions<'a>(
        &'a self,
        account_id: &str,
    ) -> impl Iterator<Item = &'a Transaction> + 'a {
        let hidden = self.faults().api.hidden_transaction_ids;
        self.by_account
            .get(account_id)
            .into_iter()
            .flatten()
            .map(|&index| &self.activity.transactions[index])
            .filter(move |tx| !hidden.contains(&tx.transaction_id))
    }

    /// One transaction of the account, unless it is hidden.
    pub fn visible_transaction(&self, account_id: &str, id: u64) -> Option<&Transaction> {
        let tx = self.activity.transaction(id)?;
        let hidden = self
            .faults
            .lock()
            .expect("lock poisoned")
            .api
            .hidden_transaction_ids
            .contains(&id);
        (tx.account_id == account_id && !hidden).then_some(tx)
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

    pub fn api_stats(&self) -> ApiStats {
        let by_status = self.api_statuses.lock().expect("lock poisoned").clone();
        ApiStats {
            requests: by_status.values().sum(),
            by_status,
        }
    }
}
