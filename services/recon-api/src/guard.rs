//! Checking keys without letting junk cost the database: failed attempts are limited
//! per client address, keys already found not to work are remembered briefly, and a
//! key's last use is written at most once a minute. Valid keys are never cached, so a
//! revocation applies to the very next request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use recon_store::api_keys::{self, Scope, Verdict};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

/// How long a key that did not work is answered from memory.
const MISS_TTL: Duration = Duration::from_secs(30);
/// The most remembered misses (about 50 bytes each).
const MISS_CAPACITY: usize = 10_000;
/// The most client addresses tracked before stale ones are pruned.
const ADDRESS_CAPACITY: usize = 10_000;
/// The least time between two writes of a key's `last_used_at`.
const USE_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// Why a key was turned away, as the API says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Unknown or revoked (not told apart: that would confirm a key once existed).
    Invalid,
    /// Past its expiry.
    Expired { at: DateTime<Utc> },
    /// Too many failures from this address; try again after the delay.
    TooMany { retry_after: Duration },
    /// The database could not be asked.
    Unavailable,
}

/// A key that turned out not to work, remembered until `until`.
#[derive(Debug, Clone, Copy)]
struct Miss {
    until: Instant,
    expired_at: Option<DateTime<Utc>>,
}

/// Checks presented keys (see the module documentation).
pub struct Authenticator {
    pool: PgPool,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    misses: Mutex<HashMap<[u8; 32], Miss>>,
    last_use: Mutex<HashMap<i64, Instant>>,
    lookups: AtomicU64,
}

impl std::fmt::Debug for Authenticator {
    /// Counts only: the caches hold hashes of presented keys, which have no place in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("lookups", &self.lookups())
            .field("remembered_misses", &lock(&self.misses).len())
            .field("blocked_addresses", &lock(&self.blocked).len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Allows `failures_per_minute` failed attempts per client address (all at once,
    /// then refilling evenly over the minute).
    pub fn new(pool: PgPool, failures_per_minute: NonZeroU32) -> Self {
        Authenticator {
            pool,
            failures: RateLimiter::keyed(Quota::per_minute(failures_per_minute)),
            blocked: Mutex::new(HashMap::new()),
            misses: Mutex::new(HashMap::new()),
            last_use: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
        }
    }

    /// How many keys were looked up in Postgres since start.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// The scope of `presented`, sent from `client`, or why not.
    pub async fn check(
        &self,
        client: IpAddr,
        presented: Option<SecretString>,
    ) -> Result<(i64, Scope), Refusal> {
        let client = bucket(client);
        if let Some(retry_after) = self.blocked_for(client) {
            metrics::counter!("recon_api_auth_failures_total", "reason" => "rate_limited")
                .increment(1);
            return Err(Refusal::TooMany { retry_after });
        }
        let Some(presented) = presented else {
            return Err(self.failed(client, Refusal::Missing, "missing"));
        };
        let hash = api_keys::hash(presented.expose_secret());
        if let Some(miss) = self.remembered_miss(&hash) {
            metrics::counter!("recon_api_key_negative_cache_hits_total").increment(1);
            return Err(self.failed(client, refusal_for(miss.expired_at), "cached"));
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("recon_api_key_lookups_total").increment(1);
        let verdict = api_keys::look_up(&self.pool, &presented)
            .await
            .map_err(|error| {
                tracing::error!(%error, "could not check an API key");
                Refusal::Unavailable
            })?;
        let (expired_at, reason) = match verdict {
            Verdict::Valid { id, scope } => {
                self.note_use(id);
                return Ok((id, scope));
            }
            Verdict::Unknown => (None, "unknown"),
            Verdict::Revoked => (None, "revoked"),
            Verdict::Expired { at } => (Some(at), "expired"),
        };
        self.remember_miss(hash, expired_at);
        Err(self.failed(client, refusal_for(expired_at), reason))
    }

    /// Counts a failure against `client`; past its budget the answer becomes 429.
    fn failed(&self, client: IpAddr, refusal: Refusal, reason: &'static str) -> Refusal {
        metrics::counter!("recon_api_auth_failures_total", "reason" => reason).increment(1);
        if self.failures.len() > ADDRESS_CAPACITY {
            self.failures.retain_recent();
        }
        match self.failures.check_key(&client) {
            Ok(()) => refusal,
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.failures.clock().now());
                let mut blocked = lock(&self.blocked);
                if blocked.len() >= ADDRESS_CAPACITY {
                    let now = Instant::now();
                    blocked.retain(|_, until| *until > now);
                }
                blocked.insert(client, Instant::now() + retry_after);
                tracing::warn!(%client, "too many failed API key attempts; refusing for a while");
                Refusal::TooMany { retry_after }
            }
        }
    }

    fn blocked_for(&self, client: IpAddr) -> Option<Duration> {
        let mut blocked = lock(&self.blocked);
        let until = *blocked.get(&client)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            blocked.remove(&client);
            return None;
        }
        Some(left)
    }

    fn remembered_miss(&self, hash: &[u8; 32]) -> Option<Miss> {
        let mut misses = lock(&self.misses);
        let miss = *misses.get(hash)?;
        if miss.until <= Instant::now() {
            misses.remove(hash);
            return None;
        }
        Some(miss)
    }

    fn remember_miss(&self, hash: [u8; 32], expired_at: Option<DateTime<Utc>>) {
        let now = Instant::now();
        let mut misses = lock(&self.misses);
        if misses.len() >= MISS_CAPACITY {
            misses.retain(|_, miss| miss.until > now);
        }
        // Still full of fresh misses: skip; the per-address limit still bounds lookups.
        if misses.len() < MISS_CAPACITY {
            misses.insert(
                hash,
                Miss {
                    until: now + MISS_TTL,
                    expired_at,
                },
            );
        }
    }

    /// Writes the key's last use in the background, at most once a minute per key.
    fn note_use(&self, id: i64) {
        let now = Instant::now();
        {
            let mut last_use = lock(&self.last_use);
            if last_use
                .get(&id)
                .is_some_and(|at| now.duration_since(*at) < USE_WRITE_INTERVAL)
            {
                return;
            }
            last_use.insert(id, now);
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(error) = api_keys::record_use(&pool, id).await {
                tracing::warn!(%error, key_id = id, "could not record an API key's last use");
            }
        });
    }
}

fn refusal_for(expired_at: Option<DateTime<Utc>>) -> Refusal {
    match expired_at {
        Some(at) => Refusal::Expired { at },
        None => Refusal::Invalid,
    }
}

/// The unit limited: an IPv4 address, or an IPv6 /64 (one host usually holds a whole
/// /64, so limiting single IPv6 addresses would limit nothing).
pub fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// A poisoned lock only means another request panicked mid-update of a cache; the
/// data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(bucket(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
