//! The simulator's own endpoints under `/sim/`: ground truth, fault switches,
//! counters and webhook delivery control; plus `/healthz`, `/readyz`, `/metrics`.
//! Local test infrastructure: it hands out its (fake) tokens on purpose.

mod flows;
mod time;

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::activity::{Batch, TerminalCancel};
use crate::faults::Faults;
use crate::ledger::{Checkout, ConnectedAccount, RecurringObject, TruthTransaction};
use crate::limits::RateLimits;
use crate::state::SimState;
use crate::webhooks::PlannedDelivery;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
        )
        .route(
            "/readyz",
            web::get().to(|| async { HttpResponse::Ok().body("ready") }),
        )
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/sim")
                .route("/accounts", web::get().to(accounts))
                .route("/truth", web::get().to(truth))
                .route("/faults", web::get().to(get_faults))
                .route("/faults", web::put().to(put_faults))
                .route("/limits", web::get().to(get_limits))
                .route("/limits", web::put().to(put_limits))
                .route("/accounts/{account_id}/exhaust", web::post().to(exhaust))
                .route("/stats", web::get().to(stats))
                .route("/deliveries", web::get().to(deliveries))
                .route("/deliveries/start", web::post().to(start_deliveries))
                .configure(flows::configure)
                .configure(time::configure),
        );
}

/// Every account, generated or connected at run time, with its (fake) tokens.
async fn accounts(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.ledger().activity.accounts)
}

/// The ground truth, optionally for one account (`?account=`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Truth<'a> {
    /// Each with `madeBy`: the partner-program request that made it, or null.
    transactions: Vec<TruthTransaction<'a>>,
    batches: Vec<&'a Batch>,
    terminal_cancels: Vec<&'a TerminalCancel>,
    /// Webhooks the fault plan never sends: only a sweep of the API finds these.
    dropped_webhooks: Vec<PlannedDelivery>,
    checkouts: Vec<&'a Checkout>,
    recurring: Vec<&'a RecurringObject>,
    connected_accounts: Vec<&'a ConnectedAccount>,
}

async fn truth(
    state: web::Data<SimState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    state.tick();
    let wanted = query.get("account");
    let of = |account: &String| wanted.is_none_or(|w| w == account);
    let ledger = state.ledger();
    let activity = &ledger.activity;
    HttpResponse::Ok().json(Truth {
        transactions: activity
            .transactions
            .iter()
            .filter(|t| of(&t.account_id))
            .map(|t| ledger.truth_of(t))
            .collect(),
        batches: activity
            .batches
            .iter()
            .filter(|b| of(&b.account_id))
            .collect(),
        terminal_cancels: activity
            .terminal_cancels
            .iter()
            .filter(|c| of(&c.account_id))
            .collect(),
        dropped_webhooks: state
            .deliveries
            .dropped()
            .into_iter()
            .filter(|d| of(&d.account_id))
            .collect(),
        checkouts: ledger
            .checkouts
            .iter()
            .filter(|c| of(&c.account_id))
            .collect(),
        recurring: ledger
            .recurring
            .objects
            .iter()
            .filter(|o| of(&o.account_id))
            .collect(),
        connected_accounts: ledger
            .connected_accounts
            .iter()
            .filter(|c| of(&c.referred_by) || of(&c.account_id))
            .collect(),
    })
}

async fn get_faults(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults())
}

async fn put_faults(state: web::Data<SimState>, faults: web::Json<Faults>) -> HttpResponse {
    state.set_faults(faults.into_inner());
    HttpResponse::Ok().json(state.faults())
}

async fn get_limits(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.limiter.limits())
}

async fn put_limits(state: web::Data<SimState>, limits: web::Json<RateLimits>) -> HttpResponse {
    state.limiter.set_limits(limits.into_inner());
    HttpResponse::Ok().json(state.limiter.limits())
}

async fn exhaust(
    state: web::Data<SimState>,
    account_id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let seconds = query
        .get("seconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60);
    if state.ledger().activity.account(&account_id).is_none() {
        return HttpResponse::NotFound()
            .json(json!({"error": format!("no account {account_id:?}")}));
    }
    state
        .limiter
        .exhaust(&account_id, Duration::from_secs(seconds));
    HttpResponse::Ok().json(json!({"accountId": *account_id, "exhaustedForSeconds": seconds}))
}

async fn stats(state: web::Data<SimState>) -> HttpResponse {
    state.tick();
    let ledger = state.ledger();
    HttpResponse::Ok().json(json!({
        "api": state.api_stats(),
        "webhooks": state.deliveries.summary(),
        "transactions": ledger.activity.transactions.len(),
        "batches": ledger.activity.batches.len(),
        "terminalCancels": ledger.activity.terminal_cancels.len(),
        "runTimeTransactions": ledger.activity.transactions.len() - state.activity.transactions.len(),
        "madeByPartnerRequests": ledger.made_by.len(),
        "partnerTokens": state.partner_counts(),
    }))
}

async fn deliveries(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(state.deliveries.records())
}

async fn start_deliveries(state: web::Data<SimState>) -> HttpResponse {
    match state.into_inner().start_deliveries() {
        Ok(started) => HttpResponse::Accepted().json(json!({"startedNow": started})),
        Err(reason) => HttpResponse::Conflict().json(json!({"error": reason})),
    }
}

/// A few counters in Prometheus' text format.
async fn metrics(state: web::Data<SimState>) -> HttpResponse {
    let mut text = String::new();
    let api = state.api_stats();
    text.push_str("# HELP sim_api_requests_total API requests answered, by status.\n");
    text.push_str("# TYPE sim_api_requests_total counter\n");
    for (status, count) in &api.by_status {
        let _ = writeln!(
            text,
            "sim_api_requests_total{{status=\"{status}\"}} {count}"
        );
    }
    let webhooks = state.deliveries.summary();
    text.push_str("# HELP sim_webhooks Webhook deliveries by state.\n# TYPE sim_webhooks gauge\n");
    for (name, value) in [
        ("planned", webhooks.planned),
        ("delivered", webhooks.delivered),
        ("pending", webhooks.pending),
        ("gave_up", webhooks.gave_up),
        ("dropped", webhooks.dropped),
    ] {
        let _ = writeln!(text, "sim_webhooks{{state=\"{name}\"}} {value}");
    }
    let _ = writeln!(
        text,
        "# TYPE sim_webhook_failed_attempts_total counter\nsim_webhook_failed_attempts_total {}",
        webhooks.failed_attempts
    );
    let partner = state.partner_counts();
    text.push_str("# HELP sim_partner_token_answers_total Partner-program requests by their is-valid-partner-token answer.\n");
    text.push_str("# TYPE sim_partner_token_answers_total counter\n");
    for (answer, count) in [
        ("valid", partner.valid),
        ("invalid", partner.invalid),
        ("absent", partner.absent),
    ] {
        let _ = writeln!(
            text,
            "sim_partner_token_answers_total{{answer=\"{answer}\"}} {count}"
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
