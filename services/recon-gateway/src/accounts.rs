//! Which registered account a request's `api-token` belongs to, and the partner token
//! to add for it, without decrypting any API token: the token's keyed fingerprint
//! under each lookup key held (current first) is looked up in `accounts.api_token_lookup`.
//!
//! Every account with a fingerprint is held in memory, with its partner token already
//! decrypted (its own, else its referrer's), and re-read every
//! `GATEWAY_ACCOUNT_REFRESH`. When Postgres cannot be read the last accounts read are
//! kept and served: a Postgres outage never changes what is forwarded for a known
//! token. A token not held is looked up once (a newly registered account), with a
//! short timeout; if it is no account's it is remembered as unregistered until the
//! next refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use recon_store::{Purpose, SecretCipher};
use secrecy::SecretString;
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Where a partner token to add comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerSource {
    /// The account's own.
    Account,
    /// The account that referred it (`accounts.referred_by`).
    Referrer,
}

/// A registered account, as the gateway needs it.
#[derive(Debug, Clone)]
pub struct Known {
    pub account_id: String,
    pub partner_token: Option<(SecretString, PartnerSource)>,
}

/// After a failed lookup, how long unknown tokens are not looked up again (so an
/// outage does not cost every request the lookup timeout).
const DATABASE_PAUSE: Duration = Duration::from_secs(1);

macro_rules! select_accounts {
    () => {
        "SELECT a.account_id, a.api_token_lookup, a.partner_token_encrypted,
                r.account_id AS referrer_id, r.partner_token_encrypted AS referrer_token
         FROM accounts a LEFT JOIN accounts r ON r.account_id = a.referred_by
         WHERE a.api_token_lookup IS NOT NULL"
    };
}
const SELECT_ALL: &str = select_accounts!();
const SELECT_SOME: &str = concat!(select_accounts!(), " AND a.api_token_lookup = ANY($1)");

#[derive(Debug)]
pub struct AccountDirectory {
    pool: PgPool,
    cipher: Arc<SecretCipher>,
    by_lookup: RwLock<HashMap<String, Arc<Known>>>,
    /// Fingerprints (current key) looked up and found to be no account's.
    unregistered: RwLock<HashMap<String, Instant>>,
    paused_until: RwLock<Option<Instant>>,
    loaded_at: RwLock<Option<Instant>>,
    loaded_once: AtomicBool,
    lookup_timeout: Duration,
}

impl AccountDirectory {
    pub fn new(pool: PgPool, cipher: Arc<SecretCipher>, lookup_timeout: Duration) -> Self {
        AccountDirectory {
            pool,
            cipher,
            by_lookup: RwLock::default(),
            unregistered: RwLock::default(),
            paused_until: RwLock::default(),
            loaded_at: RwLock::default(),
            loaded_once: AtomicBool::new(false),
            lookup_timeout,
        }
    }

    /// The account whose token has these fingerprints (one per lookup key held,
    /// current first), or `None` when it is no registered account's, or cannot be
    /// told right now (Postgres unreachable and the token never seen).
    pub async fn find(&self, fingerprints: &[String]) -> Option<Arc<Known>> {
        {
            let held = read(&self.by_lookup);
            if let Some(known) = fingerprints.iter().find_map(|fp| held.get(fp)) {
                return Some(Arc::clone(known));
            }
        }
        let current = fingerprints.first()?;
        if read(&self.unregistered).contains_key(current) {
            return None;
        }
        if read(&self.paused_until).is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let query = sqlx::query(SELECT_SOME)
            .bind(fingerprints)
            .fetch_all(&self.pool);
        match tokio::time::timeout(self.lookup_timeout, query).await {
            Ok(Ok(rows)) => {
                let found = self.decode(&rows);
                let mut held = write(&self.by_lookup);
                let mut hit = None;
                for (fingerprint, known) in found {
                    if fingerprints.contains(&fingerprint) {
                        hit = Some(Arc::clone(&known));
                    }
                    held.insert(fingerprint, known);
                }
                if hit.is_none() {
                    write(&self.unregistered).insert(current.clone(), Instant::now());
                }
                hit
            }
            failed => {
                let reason = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {:?}", self.lookup_timeout),
                };
                *write(&self.paused_until) = Some(Instant::now() + DATABASE_PAUSE);
                tracing::warn!(
                    %reason,
                    "an API token not seen before could not be looked up (Postgres); forwarded \
                     as unregistered, its evidence kept under its fingerprint"
                );
                None
            }
        }
    }

    /// Re-reads every account. On failure the accounts held stay as they are.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let rows = sqlx::query(SELECT_ALL).fetch_all(&self.pool).await?;
        let fresh: HashMap<String, Arc<Known>> = self.decode(&rows).into_iter().collect();
        let count = fresh.len();
        *write(&self.by_lookup) = fresh;
        write(&self.unregistered).clear();
        *write(&self.loaded_at) = Some(Instant::now());
        self.loaded_once.store(true, Ordering::Release);
        ::metrics::gauge!(metrics::ACCOUNTS).set(count as f64);
        ::metrics::gauge!(metrics::ACCOUNTS_AGE_SECONDS).set(0.0);
        Ok(count)
    }

    /// Whether the accounts were read at least once.
    pub fn loaded(&self) -> bool {
        self.loaded_once.load(Ordering::Acquire)
    }

    /// How long ago the accounts were last read.
    pub fn age(&self) -> Option<Duration> {
        read(&self.loaded_at).map(|at| at.elapsed())
    }

    /// Refreshes every `every` until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        let directory = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                // Until the first read succeeds, every second: readiness waits on it.
                let wait = if directory.loaded() {
                    every
                } else {
                    every.min(Duration::from_secs(1))
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
                directory.refresh_logged().await;
            }
        });
    }

    /// [`AccountDirectory::refresh`], logging and counting a failure.
    pub async fn refresh_logged(&self) {
        if let Err(error) = self.refresh().await {
            ::metrics::counter!(metrics::ACCOUNT_REFRESH_FAILURES).increment(1);
            if let Some(age) = self.age() {
                ::metrics::gauge!(metrics::ACCOUNTS_AGE_SECONDS).set(age.as_secs_f64());
            }
            tracing::warn!(
                error = %error,
                age_secs = self.age().map(|a| a.as_secs()),
                "the accounts could not be re-read from Postgres; the last ones read are kept"
            );
        }
    }

    /// Rows as (fingerprint, account). A partner token that does not decrypt here is
    /// logged (by account, never the token) and treated as absent.
    fn decode(&self, rows: &[sqlx::postgres::PgRow]) -> Vec<(String, Arc<Known>)> {
        rows.iter()
            .filter_map(|row| {
                let account_id: String = row.try_get("account_id").ok()?;
                let fingerprint: String = row.try_get("api_token_lookup").ok()?;
                let own: Option<Vec<u8>> = row.try_get("partner_token_encrypted").ok()?;
                let referrer_id: Option<String> = row.try_get("referrer_id").ok()?;
                let referrer_token: Option<Vec<u8>> = row.try_get("referrer_token").ok()?;
                let partner_token = self
                    .partner_token(&account_id, own.as_deref())
                    .map(|t| (t, PartnerSource::Account))
                    .or_else(|| {
                        let referrer = referrer_id?;
                        self.partner_token(&referrer, referrer_token.as_deref())
                            .map(|t| (t, PartnerSource::Referrer))
                    });
                Some((
                    fingerprint,
                    Arc::new(Known {
                        account_id,
                        partner_token,
                    }),
                ))
            })
            .collect()
    }

    fn partner_token(&self, account_id: &str, blob: Option<&[u8]>) -> Option<SecretString> {
        let blob = blob?;
        match self.cipher.decrypt(
            Purpose::PartnerToken,
            blob,
            &format!("accounts/{account_id}/partner-token"),
        ) {
            Ok(token) => Some(token),
            Err(error) => {
                tracing::warn!(
                    account = account_id,
                    %error,
                    "the account's partner token does not decrypt here; the next one in line is added instead"
                );
                None
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
