//! `POST /webhooks/helcim/{account_id}`: verify, then queue durably, then answer 2xx.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use recon_queue::WebhookEnvelope;
use recon_queue::envelope::SCHEMA_VERSION;
use serde_json::json;
use tracing_actix_web::RequestId;

use crate::intake::{Intake, Rejection, SignedHeaders, VerifiedEvent, classify};
use crate::metrics::{self, EVENTS, PUBLISH_SECONDS, STALE_TIMESTAMPS, VERIFY_SECONDS};
use crate::secrets::redact;
use crate::startup::AppState;

/// Seconds Helcim is asked to wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

pub async fn receive(
    req: HttpRequest,
    account_id: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> HttpResponse {
    let account_id = account_id.into_inner();
    let Some(keys) = state.accounts.keys(&account_id).await else {
        metrics::request("unknown", "unknown_account");
        tracing::info!(account = %shorten(&account_id), "webhook for an unknown account");
        return error(
            HttpResponse::NotFound(),
            "no account with this id receives webhooks here; check the webhook URL in Helcim",
        );
    };
    let read = tokio::time::timeout(
        state.body_timeout,
        read_limited(body, &req, state.max_body_bytes),
    );
    let body = match read.await {
        Ok(Ok(body)) => body,
        Ok(Err(response)) => {
            metrics::request(&account_id, "too_large");
            return response;
        }
        Err(_) => {
            metrics::request(&account_id, "body_timeout");
            return error(
                HttpResponse::RequestTimeout(),
                &format!(
                    "the body did not arrive within {} ms",
                    state.body_timeout.as_millis()
                ),
            );
        }
    };
    let now = state.clock.now();
    let started = Instant::now();
    let intake = classify(signed_headers(req.headers()), &body, &keys.keys, now);
    ::metrics::histogram!(VERIFY_SECONDS).record(started.elapsed().as_secs_f64());
    match intake {
        // Some of the account's tokens cannot be read here: the signature may well be
        // made with one of them, so Helcim is asked to retry rather than told no.
        Err(Rejection::Unauthorized(_) | Rejection::Stale { .. }) if keys.unreadable > 0 => {
            metrics::request(&account_id, "secrets_unreadable");
            unavailable("this account's verifier tokens cannot be read right now; retry later")
        }
        Err(rejection) => reject(&account_id, rejection),
        Ok(Intake::Probe) => {
            metrics::request(&account_id, "probe");
            tracing::info!(account = %account_id, "ignored an unsigned, event-less request (webhook settings probe)");
            HttpResponse::Ok()
                .json(json!({"status": "ignored", "reason": "no event in the request"}))
        }
        Ok(Intake::Event(event)) => queue(&state, account_id, event, body, request_id).await,
    }
}

async fn queue(
    state: &AppState,
    account_id: String,
    event: VerifiedEvent,
    body: web::Bytes,
    request_id: RequestId,
) -> HttpResponse {
    let event_label = if event.known_type {
        event.event_type.clone()
    } else {
        "other".to_string()
    };
    if !event.known_type {
        tracing::warn!(account = %account_id, event_type = %shorten(&event.event_type), "queued an event type this version does not know");
    }
    // A secret in the body (a connected account's API token) is sealed to the
    // worker's key and replaced by a marker: it never reaches the queue in clear.
    let redacted = match redact(&body) {
        Ok(redacted) => redacted,
        // `classify` parsed it already; should that ever change, a body that may hold
        // a token is refused rather than queued as it is.
        Err(not_json) => return reject(&account_id, Rejection::BadRequest(not_json.to_string())),
    };
    let (raw_body, sealed_secrets) = match redacted {
        None => (body.to_vec(), None),
        Some(redacted) => match &state.intake_key {
            Some(key) => {
                let (redacted, sealed) = redacted.seal(key);
                (redacted, Some(sealed))
            }
            None => {
                metrics::request(&account_id, "unavailable");
                tracing::error!(account = %account_id, webhook_id = %event.webhook_id, "a webhook carries an API token but no intake public key is configured (RECON_INTAKE_PUBLIC_KEY); answering 503 so Helcim retries");
                return unavailable(
                    "the event carries a secret this receiver cannot protect yet; retry later",
                );
            }
        },
    };
    let envelope = WebhookEnvelope {
        schema_version: SCHEMA_VERSION,
        webhook_id: event.webhook_id.clone(),
        account_id: account_id.clone(),
        event_type: event.event_type,
        object_id: event.object_id,
        helcim_timestamp: event.timestamp,
        received_at_micros: unix_now_micros(),
        raw_body,
        request_id: request_id.to_string(),
        sealed_secrets,
    };
    let started = Instant::now();
    let published = state.publisher.publish(&envelope).await;
    ::metrics::histogram!(PUBLISH_SECONDS).record(started.elapsed().as_secs_f64());
    match published {
        Ok(()) => {
            metrics::request(&account_id, "accepted");
            ::metrics::counter!(EVENTS, "account" => account_id.clone(), "event_type" => event_label).increment(1);
            tracing::info!(account = %account_id, webhook_id = %event.webhook_id, "queued webhook");
            HttpResponse::Ok().json(json!({"status": "queued", "webhookId": event.webhook_id}))
        }
        Err(cause) => {
            metrics::request(&account_id, "unavailable");
            tracing::error!(account = %account_id, webhook_id = %event.webhook_id, error = %cause, "could not queue webhook; answering 503 so Helcim retries");
            unavailable("the event could not be queued durably right now; retry later")
        }
    }
}

/// 503 with `Retry-After`: Helcim retries later.
fn unavailable(reason: &str) -> HttpResponse {
    let mut response = HttpResponse::ServiceUnavailable();
    response.insert_header((RETRY_AFTER, RETRY_AFTER_SECS));
    error(response, reason)
}

fn reject(account_id: &str, rejection: Rejection) -> HttpResponse {
    let (outcome, builder) = match &rejection {
        Rejection::Unauthorized(_) => ("unauthorized", HttpResponse::Unauthorized()),
        Rejection::Stale { direction, .. } => {
            // `account_id` is registered (the route checked): a bounded label set.
            ::metrics::counter!(STALE_TIMESTAMPS, "account" => account_id.to_string(), "direction" => *direction).increment(1);
            ("stale", HttpResponse::Unauthorized())
        }
        Rejection::BadRequest(_) => ("bad_request", HttpResponse::BadRequest()),
    };
    metrics::request(account_id, outcome);
    tracing::warn!(account = %account_id, reason = %rejection, "refused webhook");
    error(builder, &rejection.to_string())
}

/// Reads at most `limit` bytes; 413 beyond, judged on `Content-Length` first when sent.
async fn read_limited(
    mut payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<web::Bytes, HttpResponse> {
    let too_large = || {
        error(
            HttpResponse::PayloadTooLarge(),
            &format!("the body is larger than the {limit}-byte limit"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                HttpResponse::BadRequest(),
                &format!("the body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn signed_headers(headers: &HeaderMap) -> SignedHeaders<'_> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    SignedHeaders {
        webhook_id: get("webhook-id"),
        timestamp: get("webhook-timestamp"),
        signature: get("webhook-signature"),
    }
}

fn error(mut builder: actix_web::HttpResponseBuilder, reason: &str) -> HttpResponse {
    builder.json(json!({"error": reason}))
}

fn unix_now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Caller-chosen text in logs stays short.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}
