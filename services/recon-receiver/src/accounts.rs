//! Which accounts exist and their active verifier tokens.
//!
//! Loaded from a [`AccountSource`] (the environment's single account, or the
//! database), cached, and refreshed in the background so new accounts and rotated
//! tokens take effect without a restart. A request for an unknown account triggers
//! an early refresh (at most one per `miss_refresh_interval`), so an account added a
//! moment ago is found at once.
//!
//! An account whose verifier tokens do not decrypt here (a key missing from this
//! deployment, or a version-1 secret not yet re-encrypted) stays known, with its
//! unreadable tokens counted: the route answers 503 (Helcim retries) rather than 404
//! or 401, the `receiver_account_secrets_unreadable` gauge names it, and the error is
//! logged once per refresh, never per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::signature::{KeyError, VerifierKey};

/// One account's active verifier keys, and how many of its tokens could not be read.
#[derive(Debug, Clone, Default)]
pub struct AccountKeys {
    pub keys: Arc<[VerifierKey]>,
    /// Active tokens that do not decrypt with the keys this process holds.
    pub unreadable: usize,
}

impl From<Vec<VerifierKey>> for AccountKeys {
    fn from(keys: Vec<VerifierKey>) -> Self {
        AccountKeys {
            keys: keys.into(),
            unreadable: 0,
        }
    }
}

/// Active verifier keys by account id.
pub type KeyTable = HashMap<String, AccountKeys>;

/// Where accounts come from.
pub trait AccountSource: Send + Sync + fmt::Debug + 'static {
    fn load(&self) -> futures::future::BoxFuture<'_, anyhow::Result<KeyTable>>;
}

/// One account from `HELCIM_ACCOUNT_ID` + `HELCIM_WEBHOOK_VERIFIER_TOKEN`.
#[derive(Debug, Clone)]
pub struct StaticAccounts(KeyTable);

impl StaticAccounts {
    /// `tokens` may list several tokens separated by spaces or commas (rotation).
    pub fn single(account_id: &str, tokens: &str) -> Result<Self, KeyError> {
        let keys: Vec<VerifierKey> = tokens
            .split([' ', ',', '\n'])
            .filter(|t| !t.trim().is_empty())
            .map(VerifierKey::parse)
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(StaticAccounts(HashMap::from([(
            account_id.to_string(),
            AccountKeys::from(keys),
        )])))
    }

    pub fn from_table(table: KeyTable) -> Self {
        StaticAccounts(table)
    }
}

impl AccountSource for StaticAccounts {
    fn load(&self) -> futures::future::BoxFuture<'_, anyhow::Result<KeyTable>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// Every account with active verifier tokens in the database.
#[derive(Debug, Clone)]
pub struct DatabaseAccounts(pub recon_store::AccountStore);

impl AccountSource for DatabaseAccounts {
    fn load(&self) -> futures::future::BoxFuture<'_, anyhow::Result<KeyTable>> {
        Box::pin(async move {
            let mut table: HashMap<String, (Vec<VerifierKey>, usize)> = HashMap::new();
            for (account_id, token) in self.0.active_verifier_tokens().await? {
                let entry = table.entry(account_id.clone()).or_default();
                let token = match token {
                    Ok(token) => token,
                    // Once per refresh: requests only count it.
                    Err(error) => {
                        tracing::error!(account = %account_id, %error, "a verifier token does not decrypt: webhooks for this account get 503 until it does");
                        entry.1 += 1;
                        continue;
                    }
                };
                match VerifierKey::parse(secrecy::ExposeSecret::expose_secret(&token)) {
                    Ok(key) => entry.0.push(key),
                    // One bad row must not take every other account down with it.
                    Err(error) => {
                        tracing::error!(account = %account_id, %error, "skipping an unusable verifier token")
                    }
                }
            }
            Ok(table
                .into_iter()
                .map(|(id, (keys, unreadable))| {
                    let keys = AccountKeys {
                        keys: keys.into(),
                        unreadable,
                    };
                    (id, keys)
                })
                .collect())
        })
    }
}

/// The cached directory the webhook route asks.
#[derive(Debug)]
pub struct AccountDirectory {
    sources: Vec<Box<dyn AccountSource>>,
    table: RwLock<KeyTable>,
    last_miss_refresh: tokio::sync::Mutex<Option<Instant>>,
    miss_refresh_interval: Duration,
}

impl AccountDirectory {
    /// Loads every source once; fails if one cannot be read at start-up.
    pub async fn load(sources: Vec<Box<dyn AccountSource>>) -> anyhow::Result<Arc<Self>> {
        let directory = AccountDirectory {
            sources,
            table: RwLock::new(KeyTable::new()),
            last_miss_refresh: tokio::sync::Mutex::new(None),
            miss_refresh_interval: Duration::from_secs(2),
        };
        directory.refresh().await?;
        Ok(Arc::new(directory))
    }

    /// Re-reads every source; the old table stays if one fails.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut table = KeyTable::new();
        for source in &self.sources {
            table.extend(source.load().await?);
        }
        // Registered accounts only: the label values come from the sources, never from
        // a request.
        for (account, keys) in &table {
            ::metrics::gauge!(crate::metrics::SECRETS_UNREADABLE, "account" => account.clone())
                .set(keys.unreadable as f64);
        }
        *self.table.write().expect("lock poisoned") = table;
        Ok(())
    }

    pub fn account_count(&self) -> usize {
        self.table.read().expect("lock poisoned").len()
    }

    /// The account's active keys, or `None` if no such account exists.
    pub async fn keys(&self, account_id: &str) -> Option<AccountKeys> {
        if let Some(keys) = self.cached(account_id) {
            return Some(keys);
        }
        let mut last = self.last_miss_refresh.lock().await;
        if last.is_none_or(|at| at.elapsed() >= self.miss_refresh_interval) {
            *last = Some(Instant::now());
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "could not refresh accounts; using the cached ones");
            }
        }
        self.cached(account_id)
    }

    fn cached(&self, account_id: &str) -> Option<AccountKeys> {
        self.table
            .read()
            .expect("lock poisoned")
            .get(account_id)
            .cloned()
    }

    /// Refreshes every `every` until `cancel`.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration, cancel: CancellationToken) {
        let directory = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(error) = directory.refresh().await {
                    tracing::warn!(%error, "could not refresh accounts; using the cached ones");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_account_may_list_several_tokens() {
        let source = StaticAccounts::single("default", "c2Vjb25k, whsec_Zmlyc3Q=").unwrap();
        let directory = AccountDirectory::load(vec![Box::new(source)])
            .await
            .unwrap();
        assert_eq!(directory.keys("default").await.unwrap().keys.len(), 2);
        assert!(directory.keys("other").await.is_none());
    }

    #[test]
    fn an_unusable_token_is_refused_at_start() {
        assert_eq!(
            StaticAccounts::single("a", "").unwrap_err(),
            KeyError::Empty
        );
        assert_eq!(
            StaticAccounts::single("a", "ok== !!!").unwrap_err(),
            KeyError::NotBase64
        );
    }
}
