//! The gate every `/v2` request passes, as at Helcim: `api-token` authentication, the
//! account's rate limits (with the remaining budget in headers), then any faults
//! switched on. Partner-program endpoints also answer `is-valid-partner-token` and
//! keep Helcim's idempotency rules.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::idempotency::{Fingerprint, Seen, check_key};
use crate::faults::ApiFault;
use crate::ledger::MadeBy;
use crate::limits::{Admission, InFlight, Remaining};
use crate::settings::PartnerAnswer;
use crate::state::{Caller, SimState};

const PARTNER_HEADER: &str = "is-valid-partner-token";

/// Authenticates, admits within limits, applies faults, then runs `handle` for the
/// caller's account; counts the answer and adds the remaining-budget headers.
pub(super) async fn gate(
    req: &HttpRequest,
    state: &SimState,
    handle: impl FnOnce(&str) -> HttpResponse,
) -> HttpResponse {
    state.tick();
    let response = match admit(req, state).await {
        Ok((account, in_flight, remaining)) => {
            let mut response = handle(&account);
            drop(in_flight);
            add_remaining(&mut response, remaining);
            response
        }
        Err(response) => response,
    };
    state.record_status(response.status().as_u16());
    response
}

/// An answer kept whole, so that an idempotent retry gets it byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `is-valid-partner-token` value it carries, if any.
    pub partner: Option<u8>,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Answer::raw(status, body.to_string().into_bytes(), None)
    }

    pub fn raw(status: u16, body: Vec<u8>, partner: Option<u8>) -> Self {
        Answer {
            status,
            body,
            partner,
        }
    }

    /// `{"errors": {field: message}}`, Helcim's shape for a field it refused.
    pub fn field_error(field: &str, message: &str) -> Self {
        Answer::json(400, &json!({"errors": {field: message}}))
    }

    fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = HttpResponse::build(status);
        if !self.body.is_empty() {
            response.content_type("application/json");
        }
        if let Some(value) = self.partner {
            response.insert_header((PARTNER_HEADER, value.to_string()));
        }
        response.body(self.body)
    }
}

/// Whether a partner endpoint insists on an `idempotency-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// Payment API: a missing key is a 400.
    Required,
    /// Elsewhere: the rules apply when a key is sent.
    Optional,
}

/// One admitted request to a partner-program endpoint.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub account: String,
    pub endpoint: &'static str,
    pub partner: PartnerAnswer,
    pub idempotency_key: Option<String>,
}

impl Call {
    /// What the truth says about the request that made a transaction.
    pub fn made_by(&self) -> MadeBy {
        MadeBy {
            endpoint: self.endpoint,
            is_valid_partner_token: self.partner.header,
            partner_token_sent: self.partner.sent,
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

/// The gate of a partner-program endpoint: [`gate`]'s checks, then the idempotency
/// rules, then `handle`; every answer but an edge proxy's error page carries
/// `is-valid-partner-token` (left out when no token was sent, unless configured).
pub(super) async fn partner_gate(
    req: &HttpRequest,
    state: &SimState,
    endpoint: &'static str,
    keys: Keys,
    body: &[u8],
    handle: impl FnOnce(&Call) -> Answer,
) -> HttpResponse {
    let token = req
        .headers()
        .get("partner-token")
        .map(|v| v.to_str().unwrap_or_default());
    let partner = state.payments.partner_tokens.answer(token);
    state.record_partner_answer(partner);
    let response = match admit(req, state).await {
        Ok((account, in_flight, remaining)) => {
            let key = req
                .headers()
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap_or("\u{fffd}"));
            let call = Call {
                account,
                endpoint,
                partner,
                idempotency_key: key.map(str::to_string),
            };
            let answer = idempotent(state, &call, keys, body, handle);
            let mut response = answer.into_response();
            drop(in_flight);
            add_remaining(&mut response, remaining);
            response
        }
        Err(mut response) => {
            let edge_page = response
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if let (false, Some(value)) = (edge_page, partner.header) {
                response.headers_mut().insert(
                    HeaderName::from_static(PARTNER_HEADER),
                    HeaderValue::from(u16::from(value)),
                );
            }
            response
        }
    };
    state.record_status(response.status().as_u16());
    response
}

fn idempotent(
    state: &SimState,
    call: &Call,
    keys: Keys,
    body: &[u8],
    handle: impl FnOnce(&Call) -> Answer,
) -> Answer {
    let stamped = |mut answer: Answer| {
        answer.partner = call.partner.header;
        answer
    };
    if keys == Keys::Optional && call.idempotency_key.is_none() {
        return stamped(handle(call));
    }
    let key = match check_key(call.idempotency_key.as_deref()) {
        Ok(key) => key,
        Err(reason) => return stamped(Answer::field_error("idempotency-key", &reason)),
    };
    let fingerprint = Fingerprint::of(call.endpoint, body);
    let now = Instant::now();
    // Held while handling, so that two requests with one key make one payment.
    let mut store = state.idempotency.lock().expect("lock poisoned");
    match store.check(&call.account, key, &fingerprint, now) {
        Seen::Replay(answer) => answer,
        Seen::Conflict => stamped(Answer::json(
            409,
            &json!({"errors": "This idempotency-key was used for a different request in the last 5 minutes: send a new key for a new payment, or the same body to retry"}),
        )),
        Seen::New => {
            let answer = stamped(handle(call));
            store.remember(&call.account, key, fingerprint, answer.clone(), now);
            answer
        }
    }
}

async fn admit(
    req: &HttpRequest,
    state: &SimState,
) -> Result<(String, InFlight, Remaining), HttpResponse> {
    let token = req.headers().get("api-token").and_then(|v| v.to_str().ok());
    let account = match state.caller(token) {
        Caller::Account(account) => account,
        Caller::NoAccess(_) => {
            return Err(HttpResponse::Forbidden().json(json!({"errors": "No access permission"})));
        }
        Caller::Unknown => {
            return Err(HttpResponse::Unauthorized().json(json!({"errors": "Unauthorized"})));
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (in_flight, remaining) = match state.limiter.admit(&account, now) {
        Admission::Admitted(in_flight, remaining) => (in_flight, remaining),
        Admission::Refused(remaining) => {
            let mut response = HttpResponse::TooManyRequests().json(
                json!({"errors": ["Too many requests: the account's API rate limit is spent"]}),
            );
            add_remaining(&mut response, remaining);
            return Err(response);
        }
    };
    match state.decide_api_fault() {
        ApiFault::None => {}
        ApiFault::Slow(delay) => tokio::time::sleep(delay).await,
        ApiFault::Fail(status) => {
            let mut response = server_error(status);
            add_remaining(&mut response, remaining);
            return Err(response);
        }
    }
    Ok((account, in_flight, remaining))
}

/// Gateway errors come from the edge as HTML; the API's own in its JSON shape.
fn server_error(status: u16) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if matches!(status.as_u16(), 502 | 504) {
        return HttpResponse::build(status)
            .content_type("text/html")
            .body(format!("<html><body><h1>{status}</h1></body></html>"));
    }
    HttpResponse::build(status).json(json!({
        "status": "error",
        "errors": [{"code": "SERVER_ERROR", "message": "Simulated server failure", "source": "api", "data": null}]
    }))
}

/// Adds the budget headers; every other answer capitalises them, as some real
/// traffic does.
fn add_remaining(response: &mut HttpResponse, remaining: Remaining) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("minute-limit-remaining", remaining.minute),
        ("hour-limit-remaining", remaining.hour),
    ] {
        if let Some(value) = value {
            headers.insert(HeaderName::from_static(name), value.into());
        }
    }
    if remaining.minute.is_some_and(|m| m % 2 == 1) {
        response.head_mut().set_camel_case_headers(true);
    }
}
