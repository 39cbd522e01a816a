//! What to do with one webhook request, decided without I/O: queue it, ignore it (the
//! settings probe), or refuse it with a status and a reason a sender can act on.

use serde_json::Value;

use crate::signature::{Unverified, VerifierKey, verify};

/// Event types Helcim documents; others are still queued (forward-compatible).
pub const KNOWN_EVENT_TYPES: [&str; 3] = ["cardTransaction", "terminalCancel", "connectedAccount"];

/// Longest `webhook-id` accepted (it becomes the AMQP `message_id`, a short string).
const MAX_WEBHOOK_ID_LEN: usize = 255;

/// The three Standard Webhooks headers, as sent (each may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub webhook_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A verified event, ready to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    pub webhook_id: String,
    pub timestamp: i64,
    pub event_type: String,
    /// The body's `id`, when it has one (a string or a number).
    pub object_id: Option<String>,
    pub known_type: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// No signature headers and no event: the probe sent when webhook settings are
    /// saved. Answered 2xx, never queued.
    Probe,
    Event(VerifiedEvent),
}

/// Why a request is refused. 401s never say more than which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Unauthorized(String),
    /// Signed by the account, but `webhook-timestamp` is outside the window (a late
    /// retry, or a clock off by minutes): still 401, and counted by account.
    #[error("{reason}")]
    Stale {
        reason: String,
        /// `old` or `future`.
        direction: &'static str,
    },
    #[error("{0}")]
    BadRequest(String),
}

impl From<Unverified> for Rejection {
    fn from(reason: Unverified) -> Self {
        Rejection::Unauthorized(reason.to_string())
    }
}

/// Decides the fate of a request to an existing account with these `keys`.
pub fn classify(
    headers: SignedHeaders<'_>,
    body: &[u8],
    keys: &[VerifierKey],
    now: i64,
) -> Result<Intake, Rejection> {
    let unauthorized = |reason: &str| Rejection::Unauthorized(reason.to_string());
    let (webhook_id, timestamp_text, signature) = match (
        headers.webhook_id,
        headers.timestamp,
        headers.signature,
    ) {
        (None, None, None) if !carries_event(body) => return Ok(Intake::Probe),
        (None, None, None) => {
            return Err(unauthorized(
                "the event is unsigned: webhook-id, webhook-timestamp and webhook-signature are required",
            ));
        }
        (Some(id), Some(ts), Some(sig)) => (id, ts, sig),
        (id, ts, _) => {
            let missing = if id.is_none() {
                "webhook-id"
            } else if ts.is_none() {
                "webhook-timestamp"
            } else {
                "webhook-signature"
            };
            return Err(Rejection::Unauthorized(format!(
                "the {missing} header is missing"
            )));
        }
    };
    if webhook_id.is_empty()
        || webhook_id.len() > MAX_WEBHOOK_ID_LEN
        || !webhook_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(unauthorized(
            "webhook-id must be 1 to 255 visible ASCII characters",
        ));
    }
    let timestamp = parse_timestamp(timestamp_text)
        .ok_or_else(|| unauthorized("webhook-timestamp is not a Unix time in seconds"))?;
    match verify(
        keys,
        webhook_id,
        timestamp_text,
        timestamp,
        signature,
        body,
        now,
    ) {
        Err(stale @ (Unverified::TooOld(_) | Unverified::TooNew(_))) => {
            // Signed at its own time? Then Helcim really sent it (perhaps a retry
            // reusing its first timestamp): worth counting, unlike a forgery.
            let signed = verify(
                keys,
                webhook_id,
                timestamp_text,
                timestamp,
                signature,
                body,
                timestamp,
            )
            .is_ok();
            let direction = if matches!(stale, Unverified::TooOld(_)) {
                "old"
            } else {
                "future"
            };
            return Err(if signed {
                Rejection::Stale {
                    reason: stale.to_string(),
                    direction,
                }
            } else {
                stale.into()
            });
        }
        other => other?,
    }

    // Only now, with the sender proven, is the body read.
    let json: Value = serde_json::from_slice(body)
        .map_err(|_| Rejection::BadRequest("the signed body is not JSON".into()))?;
    let event_type = json
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| Rejection::BadRequest("the signed event has no `type`".into()))?;
    let object_id = match json.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(Value::Number(id)) => Some(id.to_string()),
        _ => None,
    };
    Ok(Intake::Event(VerifiedEvent {
        webhook_id: webhook_id.to_string(),
        timestamp,
        event_type: event_type.to_string(),
        object_id,
        known_type: KNOWN_EVENT_TYPES.contains(&event_type),
    }))
}

/// Decimal digits only, at most 12 of them (no sign, no spaces).
fn parse_timestamp(text: &str) -> Option<i64> {
    (!text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// A body is an event when it is a JSON object with a `type` or an `id`.
fn carries_event(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields.contains_key("type") || fields.contains_key("id"),
        Ok(_) => false,
        Err(_) => !body.iter().all(u8::is_ascii_whitespace),
    }
}

#[cfg(test)]
mod tests;
