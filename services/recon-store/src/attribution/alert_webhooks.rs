//! Alert webhooks (docs/alerts.md): where attribution alerts are also POSTed, signed
//! the Standard Webhooks way with the subscriber's own `whsec_` secret. The secret is
//! stored encrypted ([`Purpose::AlertWebhook`]), bound to the webhook's name, and is
//! never returned by a listing.
//!
//! Deliveries are claimed with a lease (`next_attempt_at` pushed forward in the same
//! statement that picks them, `FOR UPDATE SKIP LOCKED`), so replicas share them
//! without holding a database transaction across an HTTP request; a replica that
//! dies mid-attempt leaves the delivery to be retried when the lease runs out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::{Purpose, SecretCipher};

/// Why a webhook could not be added or used. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("an alert webhook named {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks a webhook URL: `https`, or `http` to a loopback address only (a local
/// relay or a test), with a host and no credentials in it.
///
/// Against server-side request forgery (a subscriber's URL that makes the worker POST
/// inside our network): an IP address in the URL must be public, or loopback (a relay
/// beside the worker, which the operator placed there); private, link-local (cloud
/// metadata at 169.254.169.254), shared, reserved and multicast addresses are refused.
/// A host name is checked when the worker connects: every address it resolves to must
/// be public (`localhost` excepted), so a name re-pointed at an internal address later
/// is refused too (recon-worker `attribution::webhooks`). Redirects are never followed.
pub fn check_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("webhook URL {text:?}: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the webhook URL must not hold credentials: the signature authenticates us, the subscriber's TLS certificate them".into());
    }
    refusal(&url).map_or(Ok(url), |why| Err(format!("webhook URL {text:?}: {why}")))
}

/// Why a parsed webhook URL is refused, without repeating the URL (its path or query
/// may hold the subscriber's token, and this reason is logged and stored as a
/// delivery's `last_error`); `None` when it is allowed. Credentials are
/// [`check_url`]'s business.
pub fn refusal(url: &url::Url) -> Option<String> {
    let Some(host) = url.host() else {
        return Some("it has no host".into());
    };
    let loopback = match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    let literal: Option<IpAddr> = match host {
        url::Host::Domain(_) => None,
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
    };
    if let Some(ip) = literal
        && !loopback
        && !is_public(ip)
    {
        return Some(format!(
            "{ip} is not a public address (private, link-local, reserved or multicast); alert webhooks go to public addresses, or loopback for a local relay"
        ));
    }
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        "http" => Some("http is allowed to loopback addresses only; use https".into()),
        other => Some(format!(
            "the scheme must be https (or http to loopback), not {other}"
        )),
    }
}

/// A public unicast address: where an alert webhook may be sent. Not loopback,
/// private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), link-local
/// (169.254/16, fe80::/10), unspecified, broadcast, multicast, documentation,
/// benchmarking or reserved; an IPv4 address inside IPv6 (`::ffff:a.b.c.d`,
/// `64:ff9b::a.b.c.d`) is judged as the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || s[0..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

/// The key inside a Standard Webhooks secret: `whsec_` then base64 of 24 to 64 bytes.
pub fn secret_key(secret: &SecretString) -> Result<Vec<u8>, String> {
    let text = secret.expose_secret().trim();
    let encoded = text
        .strip_prefix("whsec_")
        .ok_or("the webhook secret must start with whsec_ (a Standard Webhooks secret)")?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the webhook secret is not whsec_ followed by base64")?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "the webhook secret's key is {} bytes; Standard Webhooks keys are 24 to 64 bytes",
            key.len()
        ));
    }
    Ok(key)
}

/// A new random secret (`whsec_` + base64 of 32 bytes), for operators who need one.
pub fn generate_secret() -> SecretString {
    use rand::RngCore;
    let mut key = [0_u8; 32];
    rand::rng().fill_bytes(&mut key);
    SecretString::from(format!("whsec_{}", STANDARD.encode(key)))
}

fn context(name: &str) -> String {
    format!("alert-webhook:{name}:secret")
}

/// A webhook as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInfo {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// `None`: every account's alerts (and `month_closed`).
    pub account_ids: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

/// One delivery to attempt, claimed under a lease.
pub struct DueDelivery {
    pub alert_id: i64,
    pub webhook_id: i64,
    pub webhook_name: String,
    pub url: String,
    /// The decrypted secret, or why it could not be decrypted (no key for it in this
    /// process): the attempt then fails with that reason, so the delivery is retried
    /// with backoff and dies like any other failure (visible in `reconctl alerts
    /// webhooks list`, replayed once the key is fixed) instead of being re-leased
    /// forever.
    pub secret: Result<SecretString, String>,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The alert's protobuf payload.
    pub payload: Vec<u8>,
    /// The claim's lease, as stored: [`AlertWebhooks::delivered`] and
    /// [`AlertWebhooks::failed`] change the delivery only while it is still this
    /// claim's (a claim that outlived its lease was taken by another replica, whose
    /// outcome counts).
    pub lease_until: DateTime<Utc>,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("alert_id", &self.alert_id)
            .field("webhook", &self.webhook_name)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The alert webhooks and their deliveries.
#[derive(Debug, Clone)]
pub struct AlertWebhooks {
    pool: PgPool,
    cipher: Arc<SecretCipher>,
}

impl AlertWebhooks {
    pub fn new(pool: PgPool, cipher: Arc<SecretCipher>) -> Self {
        AlertWebhooks { pool, cipher }
    }

    /// Adds a webhook; `accounts` empty means every account.
    pub async fn add(
        &self,
        name: &str,
        url: &str,
        secret: &SecretString,
        accounts: &[String],
    ) -> Result<i64, WebhookError> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok {
            return Err(WebhookError::Invalid(format!(
                "webhook name {name:?}: 1 to 64 of A-Z a-z 0-9 . _ -"
            )));
        }
        let url = check_url(url).map_err(WebhookError::Invalid)?;
        secret_key(secret).map_err(WebhookError::Invalid)?;
        let sealed = self
            .cipher
            .encrypt(Purpose::AlertWebhook, secret, &context(name))?;
        let accounts = (!accounts.is_empty()).then(|| accounts.to_vec());
        let id = sqlx::query_scalar(
            "INSERT INTO alert_webhooks (name, url, secret_encrypted, account_ids)
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(url.as_str())
        .bind(sealed)
        .bind(accounts)
        .fetch_optional(&self.pool)
        .await?;
        id.ok_or_else(|| WebhookError::Exists(name.to_string()))
    }

    /// Re-encrypts secrets not under the current alert-webhook key (a rotation;
    /// `reconctl keys reencrypt`). Returns how many.
    pub async fn reencrypt_stale(&self) -> Result<usize, WebhookError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT id, name, secret_encrypted FROM alert_webhooks FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
        let mut count = 0;
        for row in rows {
            let (id, name, blob): (i64, String, Vec<u8>) =
                (row.get("id"), row.get("name"), row.get("secret_encrypted"));
            if !self.cipher.is_stale(Purpose::AlertWebhook, &blob) {
                continue;
            }
            let secret = self
                .cipher
                .decrypt(Purpose::AlertWebhook, &blob, &context(&name))?;
            let fresh = self
                .cipher
                .encrypt(Purpose::AlertWebhook, &secret, &context(&name))?;
            sqlx::query("UPDATE alert_webhooks SET secret_encrypted = $1 WHERE id = $2")
                .bind(fresh)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            count += 1;
        }
        tx.commit().await?;
        Ok(count)
    }

    /// Every webhook with its delivery counts; never the secret.
    pub async fn list(&self) -> Result<Vec<WebhookInfo>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, w.url, w.account_ids, w.created_at,
                    count(*) FILTER (WHERE d.status = 'pending') AS pending,
                    count(*) FILTER (WHERE d.status = 'delivered') AS delivered,
                    count(*) FILTER (WHERE d.status = 'dead') AS dead
               FROM alert_webhooks w
               LEFT JOIN alert_webhook_deliveries d ON d.webhook_id = w.id
              GROUP BY w.id ORDER BY w.name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| WebhookInfo {
                id: row.get("id"),
                name: row.get("name"),
                url: row.get("url"),
                account_ids: row.get("account_ids"),
                created_at: row.get("created_at"),
                pending: row.get("pending"),
                delivered: row.get("delivered"),
                dead: row.get("dead"),
            })
            .collect())
    }

    /// Removes a webhook and its deliveries; false when there was none by that name.
    pub async fn remove(&self, name: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM alert_webhooks WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts dead deliveries (of one webhook, or all) back to pending, due at `now`,
    /// with a fresh count of attempts. Returns how many.
    pub async fn replay(&self, name: Option<&str>, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE alert_webhook_deliveries d
                SET status = 'pending', attempts = 0, next_attempt_at = $2
               FROM alert_webhooks w
              WHERE d.webhook_id = w.id AND d.status = 'dead'
                AND ($1::text IS NULL OR w.name = $1)",
        )
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` deliveries due at `now`, leasing them for `lease` (another
    /// replica will not take them before), with their secrets decrypted (or why not).
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, sqlx::Error> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
        let rows = sqlx::query(
            "WITH due AS (
                 SELECT alert_id, webhook_id FROM alert_webhook_deliveries
                  WHERE status = 'pending' AND next_attempt_at <= $1
                  ORDER BY next_attempt_at, alert_id
                  LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE alert_webhook_deliveries d SET next_attempt_at = $2
               FROM due, alert_webhooks w, attribution_alerts a
              WHERE d.alert_id = due.alert_id AND d.webhook_id = due.webhook_id
                AND w.id = d.webhook_id AND a.id = d.alert_id
             RETURNING d.alert_id, d.webhook_id, d.attempts, w.name, w.url,
                       w.secret_encrypted, a.payload, d.next_attempt_at",
        )
        .bind(now)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.get("name");
            let blob: Vec<u8> = row.get("secret_encrypted");
            let secret = self
                .cipher
                .decrypt(Purpose::AlertWebhook, &blob, &context(&name))
                .map_err(|error| {
                    tracing::error!(webhook = %name, %error, "cannot decrypt an alert webhook's secret; the attempt fails");
                    format!(
                        "cannot decrypt the webhook's secret with this worker's keys (RECON_ALERT_WEBHOOK_KEY or RECON_MASTER_KEY): {error}"
                    )
                });
            due.push(DueDelivery {
                alert_id: row.get("alert_id"),
                webhook_id: row.get("webhook_id"),
                webhook_name: name,
                url: row.get("url"),
                secret,
                attempts: row.get("attempts"),
                payload: row.get("payload"),
                lease_until: row.get("next_attempt_at"),
            });
        }
        Ok(due)
    }

    /// The subscriber answered 2xx. False when the claim had been lost (its lease ran
    /// out and another replica claimed the delivery): nothing is changed.
    pub async fn delivered(
        &self,
        claim: &DueDelivery,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE alert_webhook_deliveries
                SET status = 'delivered', attempts = attempts + 1, delivered_at = $3,
                    last_error = NULL
              WHERE alert_id = $1 AND webhook_id = $2 AND status = 'pending'
                AND next_attempt_at = $4",
        )
        .bind(claim.alert_id)
        .bind(claim.webhook_id)
        .bind(now)
        .bind(claim.lease_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The attempt failed: try again at `retry_at`, or give up (`None`: dead). False
    /// when the claim had been lost, as for [`AlertWebhooks::delivered`].
    pub async fn failed(
        &self,
        claim: &DueDelivery,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE alert_webhook_deliveries
                SET attempts = attempts + 1, last_error = left($3, 500),
                    status = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
                    next_attempt_at = COALESCE($4, next_attempt_at)
              WHERE alert_id = $1 AND webhook_id = $2 AND status = 'pending'
                AND next_attempt_at = $5",
        )
        .bind(claim.alert_id)
        .bind(claim.webhook_id)
        .bind(error)
        .bind(retry_at)
        .bind(claim.lease_until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Creates the deliveries of a published alert: one per enabled webhook whose
/// accounts include the alert's account. An alert of no account (`month_closed`, or
/// evidence of an unregistered account) goes only to webhooks of every account, so a
/// webhook scoped to some accounts never learns of the others.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: i64,
    account_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO alert_webhook_deliveries (alert_id, webhook_id, next_attempt_at)
         SELECT $1, id, $3 FROM alert_webhooks
          WHERE disabled_at IS NULL
            AND (account_ids IS NULL OR ($2::text IS NOT NULL AND $2 = ANY(account_ids)))
         ON CONFLICT DO NOTHING",
    )
    .bind(alert_id)
    .bind(account_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Delivery counts by status (for a test or a summary): pending, delivered, dead.
pub async fn delivery_counts(pool: &PgPool) -> Result<(i64, i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS p,
                count(*) FILTER (WHERE status = 'delivered') AS d,
                count(*) FILTER (WHERE status = 'dead') AS x
           FROM alert_webhook_deliveries",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.get("p"), row.get("d"), row.get("x")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(check_url("https://hooks.example.com/recon").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("http://[::1]:8080/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        let err = check_url("http://hooks.example.com/x").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(check_url("ftp://127.0.0.1/x").is_err());
        assert!(check_url("https://user:pw@example.com/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn urls_to_internal_addresses_are_refused() {
        for url in [
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.7/hook",
            "https://172.16.3.4/hook",
            "https://192.168.1.1/hook",
            "https://100.64.0.1/hook",
            "https://0.0.0.0:8080/hook",
            "https://[fe80::1]/hook",
            "https://[fd00:ec2::254]/hook",
            "https://[::ffff:169.254.169.254]/hook",
            "https://[::]/hook",
            "https://224.0.0.1/hook",
        ] {
            let err = check_url(url).unwrap_err();
            assert!(err.contains("not a public address"), "{url}: {err}");
        }
        // Public addresses, names, and loopback (a local relay) stay allowed.
        assert!(check_url("https://203.0.114.9/hook").is_ok());
        assert!(check_url("https://[2606:4700::1111]/hook").is_ok());
        assert!(check_url("https://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("https://hooks.example.com/hook").is_ok());
    }

    #[test]
    fn public_addresses_are_told_apart() {
        let public = |s: &str| is_public(s.parse().unwrap());
        assert!(public("8.8.8.8"));
        assert!(public("2001:4860:4860::8888"));
        for internal in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "169.254.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::ffff:10.0.0.1",
            "fc00::1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!public(internal), "{internal}");
        }
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_a_sane_key() {
        let good = generate_secret();
        assert_eq!(secret_key(&good).unwrap().len(), 32);
        for bad in ["abc", "whsec_!!!", "whsec_AAAA"] {
            let err = secret_key(&SecretString::from(bad)).unwrap_err();
            assert!(!err.contains(bad) || bad == "abc", "{err}");
        }
    }
}
