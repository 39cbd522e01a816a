//! Alert webhooks (docs/alerts.md): every published alert is POSTed to each matching
//! subscriber as JSON, signed the Standard Webhooks way:
//!
//! - `webhook-id`: the alert id (the same on every retry: subscribers dedupe on it);
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,` + base64 of HMAC-SHA256(key, `{id}.{timestamp}.{body}`),
//!   the key being the base64 after `whsec_` in the subscriber's secret.
//!
//! A 2xx answer is delivered; anything else (or no answer within 10 s) is retried
//! after 10 s, doubling up to an hour, and after 12 attempts the delivery is `dead`
//! until `reconctl alerts webhooks replay`. Redirects are not followed: the URL is the
//! one the operator registered.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use prost::Message;
use recon_queue::envelope::alert::{AttributionAlert, Detail};
use recon_store::attribution::alert_webhooks::{
    AlertWebhooks, DueDelivery, is_public, refusal, secret_key,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;

/// When to retry and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: i32,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3_600),
            max_attempts: 12,
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), or `None` when that
    /// was the last allowed: dead.
    pub fn after_failure(&self, attempt: i32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        Some(
            self.first_delay
                .saturating_mul(1_u32 << doublings)
                .min(self.max_delay),
        )
    }

    /// A claim outlives one attempt, so no other replica takes it meanwhile.
    fn lease(&self) -> Duration {
        self.timeout * 3
    }
}

/// The Standard Webhooks signature header value.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks a signature header (space-separated `v1,<base64>` entries) the way a
/// subscriber does; used by tests and documented for subscribers.
pub fn verify(secret: &SecretString, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(key) = secret_key(secret) else {
        return false;
    };
    header.split(' ').any(|entry| {
        let Some(given) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(given) = STANDARD.decode(given) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        // Constant-time comparison.
        mac.verify_slice(&given).is_ok()
    })
}

/// The alert as the webhook's JSON body: the protobuf message's fields in
/// lowerCamelCase, with the detail under `gap`, `escalation` or `monthClosed`.
pub fn alert_json(alert: &AttributionAlert) -> Value {
    let mut body = json!({
        "schemaVersion": alert.schema_version,
        "alertId": alert.alert_id,
        "kind": alert.kind,
        "accountId": alert.account_id,
        "month": alert.month,
        "deadline": alert.deadline,
        "createdAtMicros": alert.created_at_micros,
    });
    let (name, detail) = match &alert.detail {
        Some(Detail::Gap(gap)) => (
            "gap",
            json!({
                "gapId": gap.gap_id,
                "transactionId": gap.transaction_id,
                "class": gap.class,
                "reason": gap.reason,
                "amount": gap.amount,
                "currency": gap.currency,
                "status": gap.status,
                "resolution": gap.resolution,
            }),
        ),
        Some(Detail::Escalation(e)) => (
            "escalation",
            json!({
                "secondsBeforeClose": e.seconds_before_close,
                "openGaps": e.open_gaps,
                "atRisk": e.at_risk.iter().map(|m| json!({
                    "currency": m.currency,
                    "amount": m.amount,
                    "share": m.share,
                })).collect::<Vec<_>>(),
            }),
        ),
        Some(Detail::MonthClosed(m)) => (
            "monthClosed",
            json!({
                "expiredGaps": m.expired_gaps,
                "reportSha256": m.report_sha256,
            }),
        ),
        None => return body,
    };
    if let Some(object) = body.as_object_mut() {
        object.insert(name.to_string(), detail);
    }
    body
}

/// An HTTP client for deliveries: no redirects, a timeout per attempt, and names
/// resolved only to public addresses ([`PublicOnly`]).
pub fn client(policy: &RetryPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .dns_resolver(std::sync::Arc::new(PublicOnly))
        .user_agent("helcim-recon alert webhooks")
        .build()
        .expect("a client without custom TLS always builds")
}

/// Resolves a webhook's host name and refuses it when any address it gives is not
/// public (`alert_webhooks::is_public`): a subscriber's name re-pointed at an
/// internal service (or at 169.254.169.254) must not make the worker POST there. The
/// check is in the resolver, so the addresses checked are the ones connected to (no
/// window for DNS rebinding between a check and the connection). `localhost` may
/// resolve to loopback only (a relay beside the worker). IP addresses in URLs never
/// reach a resolver; [`attempt`] checks them with `refusal`.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let localhost = host.eq_ignore_ascii_case("localhost");
            if let Some(bad) = addresses.iter().find(|a| {
                let ip = a.ip();
                !(is_public(ip) || (localhost && ip.is_loopback()))
            }) {
                return Err(format!(
                    "{host} resolves to {}, not a public address: alert webhooks are not sent inside the network",
                    bad.ip()
                )
                .into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error and its causes, without the URL (whose query may hold a subscriber's
/// token).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Deliveries claimed, and attempted at once, per round.
pub const CLAIM: usize = 50;

/// One round: claims due deliveries and attempts them all concurrently, so the round
/// ends within one attempt's timeout, well inside the claims' lease (three timeouts).
/// Attempted one after the other, a slow subscriber made the later claims outlive
/// their lease: another replica then claimed them too and the subscriber got the
/// alert twice. Returns (delivered, failed).
pub async fn deliver_due(
    store: &AlertWebhooks,
    http: &reqwest::Client,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<(usize, usize), sqlx::Error> {
    let due = store.claim_due(now, policy.lease(), CLAIM as i64).await?;
    let outcomes: Vec<(DueDelivery, Result<(), String>)> = futures::stream::iter(due)
        .map(|delivery| async move {
            let outcome = attempt(http, &delivery, now).await;
            (delivery, outcome)
        })
        .buffer_unordered(CLAIM)
        .collect()
        .await;
    let mut counts = (0, 0);
    for (delivery, outcome) in outcomes {
        let kept = match outcome {
            Ok(()) => {
                counts.0 += 1;
                store.delivered(&delivery, now).await?
            }
            Err(error) => {
                counts.1 += 1;
                let attempt = delivery.attempts + 1;
                let retry_at = policy
                    .after_failure(attempt)
                    .map(|wait| now + chrono::Duration::from_std(wait).unwrap_or_default());
                if retry_at.is_none() {
                    tracing::warn!(webhook = %delivery.webhook_name, alert_id = delivery.alert_id, %error, attempt, "alert webhook delivery is dead");
                } else {
                    tracing::info!(webhook = %delivery.webhook_name, alert_id = delivery.alert_id, %error, attempt, "alert webhook delivery failed; retrying later");
                }
                store.failed(&delivery, &error, retry_at).await?
            }
        };
        if !kept {
            tracing::warn!(webhook = %delivery.webhook_name, alert_id = delivery.alert_id, "an alert webhook attempt outlived its lease; another replica's claim decides the delivery");
        }
    }
    Ok(counts)
}

/// One POST. The error says why, never the secret.
async fn attempt(
    http: &reqwest::Client,
    delivery: &DueDelivery,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let alert = AttributionAlert::decode(delivery.payload.as_slice())
        .map_err(|e| format!("the alert's payload does not decode: {e}"))?;
    let mut alert = alert;
    alert.alert_id = delivery.alert_id as u64;
    let body = serde_json::to_vec(&alert_json(&alert)).unwrap_or_default();
    let secret = delivery.secret.as_ref().map_err(Clone::clone)?;
    let key = secret_key(secret)?;
    // A URL stored before the address rules (or by hand) is checked again: an IP
    // address in it never goes through the resolver.
    let url = reqwest::Url::parse(&delivery.url)
        .map_err(|e| format!("the webhook's stored URL does not parse: {e}"))?;
    if let Some(why) = refusal(&url) {
        return Err(format!("the webhook's URL is refused: {why}"));
    }
    let id = delivery.alert_id.to_string();
    let timestamp = now.timestamp();
    let response = http
        .post(&delivery.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(&key, &id, timestamp, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("no answer: {}", describe(e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered HTTP {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_queue::envelope::alert::{EscalationDetail, MoneyAtRisk};

    #[test]
    fn backoff_doubles_from_ten_seconds_to_an_hour_then_dies() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..12)
            .map(|a| p.after_failure(a).unwrap().as_secs())
            .collect();
        assert_eq!(
            waits,
            vec![10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(p.after_failure(12), None);
    }

    #[test]
    fn signatures_follow_standard_webhooks_and_verify() {
        // The Standard Webhooks reference vector.
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = secret_key(&secret).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &signature
        ));
        assert!(!verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &signature
        ));
    }

    #[test]
    fn the_json_body_is_the_alert_in_lower_camel_case() {
        let alert = AttributionAlert {
            schema_version: 1,
            alert_id: 9,
            kind: "escalation".into(),
            account_id: "acct-1".into(),
            month: "2026-11".into(),
            deadline: 1_796_108_400,
            created_at_micros: 5,
            detail: Some(Detail::Escalation(EscalationDetail {
                seconds_before_close: 86_400,
                open_gaps: 3,
                at_risk: vec![MoneyAtRisk {
                    currency: "CAD".into(),
                    amount: "10.00".into(),
                    share: String::new(),
                }],
            })),
        };
        let body = alert_json(&alert);
        assert_eq!(body["alertId"], 9);
        assert_eq!(body["accountId"], "acct-1");
        assert_eq!(body["escalation"]["secondsBeforeClose"], 86_400);
        assert_eq!(body["escalation"]["atRisk"][0]["amount"], "10.00");
    }
}
