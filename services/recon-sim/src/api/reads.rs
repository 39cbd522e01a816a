//! The read endpoints: connection test, card transactions, card batches, devices.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::filters::{self, BatchFilter, TransactionFilter};
use super::gate::gate;
use crate::faults;
use crate::render;
use crate::state::SimState;

type Query = web::Query<HashMap<String, String>>;

pub(super) async fn connection_test(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    gate(&req, &state, |_| {
        HttpResponse::Ok().json(json!({"message": "Connected Successfully"}))
    })
    .await
}

pub(super) async fn get_transaction(
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
                    .body(faults::truncated(&render::transaction(&tx, state.seed)))
            }
            Some(tx) => HttpResponse::Ok().json(render::transaction(&tx, state.seed)),
            None => {
                HttpResponse::NotFound().json(json!({"errors": ["Card Transaction not found"]}))
            }
        }
    })
    .await
}

pub(super) async fn list_transactions(
    req: HttpRequest,
    state: web::Data<SimState>,
    query: Query,
) -> HttpResponse {
    gate(&req, &state, |account| {
        let filter = match TransactionFilter::parse(&query) {
            Ok(filter) => filter,
            Err((field, message)) => return bad_request(field, &message),
        };
        let hidden = state.faults().api.hidden_transaction_ids;
        let ledger = state.ledger();
        let page: Vec<_> = ledger
            .transactions_of(account)
            .filter(|tx| !hidden.contains(&tx.transaction_id))
            .filter(|tx| filter.matches(tx))
            .skip(filter.offset())
            .take(filter.limit)
            .map(|tx| render::transaction(tx, state.seed))
            .collect();
        HttpResponse::Ok().json(page)
    })
    .await
}

pub(super) async fn get_batch(
    req: HttpRequest,
    state: web::Data<SimState>,
    id: web::Path<String>,
    query: Query,
) -> HttpResponse {
    gate(&req, &state, |account| {
        let Ok(id) = id.parse::<u64>() else {
            return bad_request("cardBatchId", "must be a whole number");
        };
        let ledger = state.ledger();
        match ledger
            .activity
            .batch(id)
            .filter(|b| b.account_id == account)
        {
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

pub(super) async fn list_batches(
    req: HttpRequest,
    state: web::Data<SimState>,
    query: Query,
) -> HttpResponse {
    gate(&req, &state, |account| {
        let filter = match BatchFilter::parse(&query) {
            Ok(filter) => filter,
            Err((field, message)) => return bad_request(field, &message),
        };
        let ledger = state.ledger();
        let batches: Vec<_> = ledger
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

/// `GET /v2/devices`: the account's Smart Terminals.
pub(super) async fn list_devices(req: HttpRequest, state: web::Data<SimState>) -> HttpResponse {
    gate(&req, &state, |account| {
        let ledger = state.ledger();
        let devices: Vec<_> = ledger
            .devices
            .iter()
            .filter(|d| d.account_id == account)
            .map(|d| d.render())
            .collect();
        HttpResponse::Ok().json(devices)
    })
    .await
}

fn bad_request(field: &str, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"errors": {field: message}}))
}
