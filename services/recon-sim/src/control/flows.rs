//! Control calls that play the people around a payment: the shopper's browser
//! finishing a HelcimPay.js checkout, the customer at a Smart Terminal, the merchant
//! selling in Helcim's own tools, and a referred merchant registering.
//!
//! Transactions come back as `/sim/truth` shows them (canonical, with `madeBy`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::outcomes::{self, Outcome, Refusal, Sale};
use crate::state::SimState;

pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .route(
            "/helcim-pay/{token}/complete",
            web::post().to(complete_checkout),
        )
        .route("/devices/{code}/complete", web::post().to(complete_device))
        .route("/accounts/{account_id}/sales", web::post().to(sale))
        .route(
            "/accounts/{account_id}/connected-accounts",
            web::post().to(connected_account),
        );
}

/// An optional `{"outcome": "approve" | "decline" | "cancel"}` body.
#[derive(Debug, Default, Deserialize)]
struct Completion {
    outcome: Option<Outcome>,
}

/// An empty body is no choice; anything else must be the JSON above.
fn completion(body: &[u8]) -> Result<Completion, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Completion::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        (
            400,
            format!(
                "the body must be {{\"outcome\": \"approve\"|\"decline\"|\"cancel\"}} or empty: {e}"
            ),
        )
    })
}

fn answer(result: Result<Value, Refusal>) -> HttpResponse {
    match result {
        Ok(value) => HttpResponse::Ok().json(value),
        Err((status, reason)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .json(json!({"error": reason})),
    }
}

async fn complete_checkout(
    state: web::Data<SimState>,
    token: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    answer(completion(&body).and_then(|c| outcomes::complete_checkout(&state, &token, c.outcome)))
}

async fn complete_device(
    state: web::Data<SimState>,
    code: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    answer(
        completion(&body).and_then(|c| outcomes::complete_device(&state, &code, None, c.outcome)),
    )
}

async fn sale(
    state: web::Data<SimState>,
    account_id: web::Path<String>,
    sale: web::Json<Sale>,
) -> HttpResponse {
    answer(outcomes::record_sale(
        &state,
        &account_id,
        sale.into_inner(),
    ))
}

/// An optional `{"currencies": ["CAD", "USD"]}` body (default: CAD only).
#[derive(Debug, Default, Deserialize)]
struct NewConnected {
    currencies: Option<Vec<String>>,
}

async fn connected_account(
    state: web::Data<SimState>,
    referrer: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let request: NewConnected = if body.iter().all(u8::is_ascii_whitespace) {
        NewConnected::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                return HttpResponse::BadRequest()
                    .json(json!({"error": format!("the body must be {{\"currencies\": [\"CAD\"]}} or empty: {e}")}));
            }
        }
    };
    let mut currencies = Vec::new();
    for text in request.currencies.unwrap_or_else(|| vec!["CAD".into()]) {
        match text.parse::<recon_money::Currency>() {
            Ok(c) if !currencies.contains(&c.code()) => currencies.push(c.code()),
            Ok(_) => {}
            Err(e) => return HttpResponse::BadRequest().json(json!({"error": e.to_string()})),
        }
    }
    if currencies.is_empty() {
        return HttpResponse::BadRequest()
            .json(json!({"error": "currencies needs CAD, USD or both"}));
    }
    match outcomes::connect_account(&state, &referrer, &currencies) {
        Ok(account) => {
            let devices: Vec<String> = state
                .ledger()
                .devices
                .iter()
                .filter(|d| d.account_id == account.account_id)
                .map(|d| d.code.clone())
                .collect();
            let mut value = serde_json::to_value(&account).expect("an account serialises");
            value["referredBy"] = json!(referrer.as_str());
            value["deviceCodes"] = json!(devices);
            HttpResponse::Ok().json(value)
        }
        Err(refusal) => answer(Err(refusal)),
    }
}
