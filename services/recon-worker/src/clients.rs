//! One Helcim client per account, built from the API tokens in the database and
//! sharing that account's limiter, so every request of the account in this process
//! stays within its budget.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use helcim_client::{
    AccountLimiter, AccountLimits, ApiToken, ClientConfig, HelcimClient, RetryPolicy,
};
use recon_store::AccountStore;
use secrecy::ExposeSecret;

#[derive(Debug)]
pub struct HelcimClients {
    store: AccountStore,
    base_url: String,
    limits: AccountLimits,
    clients: RwLock<HashMap<String, (Instant, HelcimClient)>>,
    /// One limiter per account for the life of the process: clients built at the
    /// same moment (many jobs start at once) must still share one budget.
    limiters: std::sync::Mutex<HashMap<String, Arc<AccountLimiter>>>,
}

/// How long a client's token is trusted before it is read again (a rotated API token
/// takes effect within this, without a restart).
const TOKEN_REFRESH: Duration = Duration::from_secs(300);

/// Why there is no client for an account.
#[derive(Debug, thiserror::Error)]
pub enum NoClient {
    #[error(
        "account {0:?} has no Helcim API token; set one with `reconctl accounts add ... --api-token-env VAR`"
    )]
    NoToken(String),
    #[error("account {account:?}'s API token cannot be used: {reason}")]
    Unusable { account: String, reason: String },
    #[error("the accounts could not be read: {0}")]
    Store(String),
}

impl HelcimClients {
    pub fn new(store: AccountStore, base_url: &str, limits: AccountLimits) -> Self {
        HelcimClients {
            store,
            base_url: base_url.to_string(),
            limits,
            clients: RwLock::new(HashMap::new()),
            limiters: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Drops the account's cached client, so the next request reads its token again
    /// (a connected account's token was just replaced). Its limiter is kept.
    pub fn forget(&self, account_id: &str) {
        self.clients
            .write()
            .expect("lock poisoned")
            .remove(account_id);
    }

    /// The account's client; an unknown account, or a token read long ago, triggers a
    /// reload of the tokens. Every client of an account spends from its one limiter.
    pub async fn get(&self, account_id: &str) -> Result<HelcimClient, NoClient> {
        let cached = self
            .clients
            .read()
            .expect("lock poisoned")
            .get(account_id)
            .cloned();
        if let Some((built, client)) = &cached
            && built.elapsed() < TOKEN_REFRESH
        {
            return Ok(client.clone());
        }
        let limiter = Arc::clone(
            self.limiters
                .lock()
                .expect("lock poisoned")
                .entry(account_id.to_string())
                .or_insert_with(|| Arc::new(AccountLimiter::new(self.limits))),
        );
        let tokens = self
            .store
            .api_tokens()
            .await
            .map_err(|e| NoClient::Store(e.to_string()))?;
        let (_, token) = tokens
            .into_iter()
            .find(|(id, _)| id == account_id)
            .ok_or_else(|| NoClient::NoToken(account_id.to_string()))?;
        let unusable = |reason: String| NoClient::Unusable {
            account: account_id.to_string(),
            reason,
        };
        let token = token.map_err(|e| unusable(e.to_string()))?;
        let token = ApiToken::new(token.expose_secret()).map_err(|e| unusable(e.to_string()))?;
        let config = ClientConfig::new(&self.base_url, token)
            .map_err(|e| unusable(e.to_string()))?
            // A few quick retries here; longer outages go through the delay queues,
            // so a message never holds a worker slot for minutes.
            .with_retry(RetryPolicy {
                max_retries: 2,
                min_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
                request_timeout: Duration::from_secs(20),
            })
            .with_limiter(limiter);
        let client = HelcimClient::new(config).map_err(|e| unusable(e.to_string()))?;
        let mut clients = self.clients.write().expect("lock poisoned");
        clients.insert(account_id.to_string(), (Instant::now(), client.clone()));
        Ok(client)
    }
}
