//! `/sim/clock`, `/sim/inject` and `/sim/accounts/{id}/traffic`: the simulator's
//! clock, discrepancies on demand, and run-time traffic.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::state::SimState;
use crate::traffic::{self, Injection};

pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/clock", web::get().to(get_clock))
        .route("/clock", web::put().to(put_clock))
        .route("/inject", web::post().to(inject))
        .route("/accounts/{account_id}/traffic", web::post().to(traffic));
}

fn clock(state: &SimState) -> HttpResponse {
    HttpResponse::Ok().json(json!({"now": state.clock.now(), "speed": state.clock.speed()}))
}

async fn get_clock(state: web::Data<SimState>) -> HttpResponse {
    state.tick();
    clock(&state)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    /// Simulated seconds per real second, from now on.
    speed: Option<u32>,
    /// Jump this many seconds forward (batches due by then close at once).
    advance_seconds: Option<u64>,
}

async fn put_clock(state: web::Data<SimState>, change: web::Json<ClockChange>) -> HttpResponse {
    if let Some(speed) = change.speed {
        if speed == 0 {
            return HttpResponse::BadRequest().json(json!({"error": "speed must be at least 1"}));
        }
        state.clock.set_speed(speed);
    }
    if let Some(seconds) = change.advance_seconds {
        state.clock.advance(seconds);
    }
    state.tick();
    clock(&state)
}

async fn inject(state: web::Data<SimState>, injection: web::Json<Injection>) -> HttpResponse {
    state.tick();
    match traffic::inject(&state, &injection) {
        Ok(done) => HttpResponse::Ok().json(done),
        Err(refusal) => refused(refusal),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficRequest {
    count: u32,
}

async fn traffic(
    state: web::Data<SimState>,
    account_id: web::Path<String>,
    request: web::Json<TrafficRequest>,
) -> HttpResponse {
    if request.count == 0 || request.count > 1_000_000 {
        return HttpResponse::BadRequest()
            .json(json!({"error": "count must be between 1 and 1000000"}));
    }
    state.tick();
    match traffic::traffic(&state, &account_id, request.count) {
        Ok(ids) => {
            HttpResponse::Ok().json(json!({"accountId": *account_id, "transactionIds": ids}))
        }
        Err(refusal) => refused(refusal),
    }
}

fn refused((status, reason): crate::outcomes::Refusal) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"error": reason}))
}
