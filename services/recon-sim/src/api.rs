//! Helcim's v2 endpoints as the simulator serves them. Every request passes the same
//! gate as at Helcim: `api-token` authentication, the account's rate limits (with
//! the remaining budget in headers), then any faults switched on.

mod filters;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::faults::{self, ApiFault};
use crate::limits::{Admission, InFlight, Remaining};
use crate::render;
use crate::state::{Caller, SimState};
use filters::{BatchFilter, TransactionFilter};

/// Mounts `/v2/...`.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/v2")
            .route("/connection-test", web::get().to(connection_test))
            .route("/card-transactions", web::get().to(list_transactions))
            .route("/card-transactions/{id}", web::get().to(get_transaction))
            .route("/card-batches", web::get().to(list_batches))
            .route("/card-batches/{id}", web::get().to(get_batch)),
    );
}

type Query = web::Query<HashMap<String, String>>;

async fn connection_test(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    gate(&req, &state, |_| {
        HttpResponse::Ok().json(json!({"message": "Connected Successfully"}))
    })
    .await
}

async fn get_transaction(
    req: HttpRequest,
    state: web::Data<SimState>,
    id: web::Path<String>,
) -> HttpResponse {
    gate(&req, &state, |account| {
        let Ok(id) = id.parse::<u64>() else {
            return bad_request("cardTransactionId", "must be a whole number");
        };
        match state.visible_transaction(account, id) {
            Some(tx) if state.faults().api.unreadable_transaction_ids.contains(&id) => {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(faults::truncated(&render::transaction(tx, state.seed)))
            }
            Some(tx) => HttpResponse::Ok().json(render::transaction(tx, state.seed)),
            None => {
                HttpResponse::NotFound().json(json!({"errors": ["Card Transaction not found"]}))
            }
        }
    })
    .await
}

async fn list_transactions(
    req: HttpRequest,
    state: web::Data<SimState>,
    query: Query,
) -> HttpResponse {
    gate(&req, &state, |account| {
        let filter = match TransactionFilter::parse(&query) {
            Ok(filter) => filter,
            Err((field, message)) => return bad_request(field, &message),
        };
        let page: Vec<_> = state
            .visible_transactions(account)
            .filter(|tx| filter.matches(tx))
            .skip(filter.offset())
            .take(filter.limit)
            .map(|tx| render::transaction(tx, state.seed))
            .collect();
        HttpResponse::Ok().json(page)
    })
    .await
}

async fn get_batch(
    req: HttpRequest,
    state: web::Data<SimState>,
    id: web::Path<String>,
    query: Query,
) -> HttpResponse {
    gate(&req, &state, |account| {
        let Ok(id) = id.parse::<u64>() else {
            return bad_request("cardBatchId", "must be a whole number");
        };
        match state.activity.batch(id).filter(|b| b.account_id == account) {
            Some(batch) => {
                let json = render::batch(batch, filters::collect_stats(&query), state.seed);
                if state.faults().api.unreadable_batch_ids.contains(&id) {
                    HttpResponse::Ok().json(faults::misdated(json))
                } else {
                    HttpResponse::Ok().json(json)
                }
            }
            None => HttpResponse::NotFound()
                .json(json!({"errors": {"cardBatchId": "Card Batch not found"}})),
        }
    })
    .await
}

async fn list_batches(req: HttpRequest, state: web::Data<SimState>, query: Query) -> HttpResponse {
    gate(&req, &state, |account| {
        let filter = match BatchFilter::parse(&query) {
            Ok(filter) => filter,
            Err((field, message)) => return bad_request(field, &message),
        };
        let batches: Vec<_> = state
            .activity
            .batches
            .iter()
            .filter(|b| b.account_id == account && filter.matches(b))
            .map(|b| render::batch(b, filter.collect_stats, state.seed))
            .collect();
        HttpResponse::Ok().json(batches)
    })
    .await
}

/// Authenticates, admits within limits, applies faults, then runs `handle` for the
/// caller's account; counts the answer and adds the remaining-budget headers.
async fn gate(
    req: &HttpRequest,
    state: &SimState,
    handle: impl FnOnce(&str) -> HttpResponse,
) -> HttpResponse {
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

fn bad_request(field: &str, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"errors": {field: message}}))
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
            headers.insert(
                actix_web::http::header::HeaderName::from_static(name),
                value.into(),
            );
        }
    }
    if remaining.minute.is_some_and(|m| m % 2 == 1) {
        response.head_mut().set_camel_case_headers(true);
    }
}
