//! One Helcim call: wait for the account's budget, send, read the remaining-budget
//! headers, classify the answer, and retry transient failures with jittered backoff.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::Retryable;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;

use super::HelcimClient;
use crate::limits::Remaining;
use crate::{ApiErrors, HelcimError, RawAnswer};

/// A success: its JSON, its body exactly as received (kept for an object that then does
/// not read as the type expected) and when its request was sent.
pub(super) struct Answer {
    pub json: Value,
    pub body: Vec<u8>,
    pub sent_at: DateTime<Utc>,
}

/// A failed attempt, with the server's `Retry-After` when it sent one.
struct AttemptError {
    error: HelcimError,
    retry_after: Option<Duration>,
}

impl HelcimClient {
    /// GETs `base_url/segments...?params` and returns the JSON body of a success.
    pub(super) async fn get(
        &self,
        segments: &[&str],
        params: &[(&str, String)],
        what: &str,
    ) -> Result<Answer, HelcimError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .expect("checked in ClientConfig::new")
            .pop_if_empty()
            .extend(segments);
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        let attempts = AtomicUsize::new(0);
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(&url, what).await
        })
        .retry(self.retry.backoff())
        .sleep(tokio::time::sleep)
        .when(|failure: &AttemptError| failure.error.is_transient())
        .adjust(|failure: &AttemptError, planned| {
            retry_delay(planned, failure.retry_after, self.max_retry_after)
        })
        .notify(|failure: &AttemptError, delay| {
            if matches!(failure.error, HelcimError::RateLimited { .. }) {
                // Every request of the account waits, not only this one.
                self.limiter.pause_for(delay);
            }
            tracing::warn!(
                path = url.path(),
                error = %failure.error,
                retry_in_ms = delay.as_millis() as u64,
                "Helcim call failed; retrying"
            );
        })
        .await;
        result.map_err(|failure| {
            let mut error = failure.error;
            error.set_attempts(attempts.load(Ordering::Relaxed));
            error
        })
    }

    async fn attempt(&self, url: &url::Url, what: &str) -> Result<Answer, AttemptError> {
        let permit = self.limiter.acquire().await;
        // Taken once the budget lets the request leave: see `Fetched`.
        let sent_at = Utc::now();
        let sent = self
            .http
            .get(url.clone())
            .header("api-token", self.token.header_value())
            .header(ACCEPT, "application/json")
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Err(transport_failure(error, what, self.retry.request_timeout)),
        };
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.limiter
            .observe_remaining(remaining(response.headers()));
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_failure(error, what, self.retry.request_timeout))?;
        drop(permit);
        if (300..400).contains(&status) {
            return Err(AttemptError {
                error: HelcimError::Redirected {
                    what: what.to_string(),
                    status,
                    location: location
                        .as_deref()
                        .map(redacted_location)
                        .unwrap_or_default(),
                },
                retry_after: None,
            });
        }
        match classify(status, &body, what) {
            Ok(json) => Ok(Answer {
                json,
                body: body.to_vec(),
                sent_at,
            }),
            // A success that is not JSON: the body goes with the error, to be kept.
            Err(HelcimError::Decode { what, reason }) => Err(AttemptError {
                error: HelcimError::Unreadable {
                    what,
                    reason,
                    answer: RawAnswer {
                        body: body.to_vec(),
                        sent_at,
                    },
                },
                retry_after,
            }),
            Err(error) => Err(AttemptError { error, retry_after }),
        }
    }
}

/// The wait before the next attempt. `planned` is the backoff's (`None`: the retries
/// are spent, and a `Retry-After` must not buy another one); the server's
/// `Retry-After` can lengthen it, but never beyond `cap`.
pub(crate) fn retry_delay(
    planned: Option<Duration>,
    retry_after: Option<Duration>,
    cap: Duration,
) -> Option<Duration> {
    let planned = planned?;
    Some(match retry_after {
        Some(asked) => planned.max(asked.min(cap)),
        None => planned,
    })
}

/// A redirect target for an error message: scheme, host and path; no query string,
/// which could carry anything.
fn redacted_location(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        Err(_) => location.split('?').next().unwrap_or_default().to_string(),
    }
}

fn transport_failure(error: reqwest::Error, what: &str, timeout: Duration) -> AttemptError {
    let error = if error.is_timeout() {
        HelcimError::Timeout {
            what: what.to_string(),
            attempts: 1,
            timeout,
        }
    } else {
        HelcimError::Transport {
            what: what.to_string(),
            attempts: 1,
            reason: error_chain(&error),
        }
    };
    AttemptError {
        error,
        retry_after: None,
    }
}

/// reqwest's top-level message is vague ("error sending request"); the cause says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads `minute-limit-remaining` and `hour-limit-remaining` (any capitalisation:
/// header names are case-insensitive).
pub(crate) fn remaining(headers: &HeaderMap) -> Remaining {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    Remaining {
        minute: read("minute-limit-remaining"),
        hour: read("hour-limit-remaining"),
    }
}

/// Turns a status and body into the JSON of a success or a typed error. A 200 whose
/// body carries `errors` is an error too: Helcim says to read the body.
pub(crate) fn classify(status: u16, body: &[u8], what: &str) -> Result<Value, HelcimError> {
    let what = what.to_string();
    if (200..300).contains(&status) {
        let json: Value = serde_json::from_slice(body).map_err(|e| HelcimError::Decode {
            what: what.clone(),
            reason: format!("the body is not JSON ({e})"),
        })?;
        if let Some(errors) = ApiErrors::from_body(&json) {
            return Err(HelcimError::Rejected {
                what,
                status,
                errors,
            });
        }
        return Ok(json);
    }
    let errors = ApiErrors::from_bytes(body);
    Err(match status {
        401 if errors.mentions("permission") => HelcimError::Forbidden { status, errors },
        401 => HelcimError::Unauthorized(errors),
        403 => HelcimError::Forbidden { status, errors },
        404 => HelcimError::NotFound { what, errors },
        429 => HelcimError::RateLimited {
            what,
            attempts: 1,
            errors,
        },
        408 | 500..=599 => HelcimError::Server {
            what,
            status,
            attempts: 1,
            errors,
        },
        _ => HelcimError::Rejected {
            what,
            status,
            errors,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors_an_operator_can_act_on() {
        let err = classify(401, br#"{"errors":"Unauthorized"}"#, "x").unwrap_err();
        assert!(matches!(err, HelcimError::Unauthorized(_)));
        assert!(!err.is_transient());

        let err = classify(401, br#"{"errors":"No access permission"}"#, "x").unwrap_err();
        assert!(matches!(err, HelcimError::Forbidden { status: 401, .. }));
        let err = classify(403, br#"{"errors":"No access permission"}"#, "x").unwrap_err();
        assert!(matches!(err, HelcimError::Forbidden { status: 403, .. }));

        let err = classify(404, br#"{"errors":["Not found"]}"#, "card transaction 7").unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("card transaction 7"));

        assert!(classify(429, b"", "x").unwrap_err().is_transient());
        assert!(classify(503, b"<html>", "x").unwrap_err().is_transient());
        assert!(
            !classify(400, br#"{"errors":{"limit":"too big"}}"#, "x")
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn a_200_with_errors_is_not_a_success() {
        let err = classify(200, br#"{"errors":"Declined"}"#, "x").unwrap_err();
        assert!(matches!(err, HelcimError::Rejected { status: 200, .. }));
        assert!(classify(200, b"not json", "x").is_err());
        assert!(classify(200, br#"[]"#, "x").is_ok());
    }

    #[test]
    fn a_retry_after_is_capped_and_never_adds_a_retry_once_they_are_spent() {
        let cap = Duration::from_secs(60);
        let planned = Some(Duration::from_secs(1));
        let huge = Some(Duration::from_secs(100_000));
        assert_eq!(retry_delay(planned, huge, cap), Some(cap));
        assert_eq!(
            retry_delay(planned, Some(Duration::from_secs(5)), cap),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_delay(planned, None, cap), planned);
        assert_eq!(retry_delay(None, huge, cap), None);
        assert_eq!(retry_delay(None, Some(Duration::ZERO), cap), None);
    }

    #[test]
    fn a_redirect_target_is_reported_without_its_query() {
        assert_eq!(
            redacted_location("https://user:pw@evil.example/x?token=abc#f"),
            "https://evil.example/x"
        );
        assert_eq!(redacted_location("/relative?token=abc"), "/relative");
    }

    #[test]
    fn remaining_budget_headers_are_read_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert("Minute-Limit-Remaining", "42".parse().unwrap());
        headers.insert("hour-limit-remaining", " 2999 ".parse().unwrap());
        assert_eq!(
            remaining(&headers),
            Remaining {
                minute: Some(42),
                hour: Some(2999)
            }
        );
    }
}
