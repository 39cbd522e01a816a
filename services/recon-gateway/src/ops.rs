//! The gateway's own endpoints: `/healthz`, `/readyz`, `/metrics`.
//!
//! Ready means "send payments here". A proxy in a payment path must not take itself
//! out of service for a bookkeeping problem: with Postgres down it still forwards
//! every payment unchanged (known accounts are served from memory, evidence is
//! spooled), so Postgres never makes it unready, and neither does Helcim (every
//! replica would be equally unable to reach it, and a 502 with a reason beats a
//! refused connection). It is not ready while shutting down, and for at most
//! `GATEWAY_ACCOUNTS_WAIT` after starting, until it has read the accounts once: a
//! fresh replica that could not yet tell which partner token belongs to which
//! merchant would forward differently from the ones already serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::accounts::AccountDirectory;
use crate::spool::Spool;

/// What the operations endpoints look at.
#[derive(Debug)]
pub struct Ops {
    pub accounts: Arc<AccountDirectory>,
    pub spool: Arc<Spool>,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    pub accounts_wait: Duration,
    pub draining: AtomicBool,
}

impl Ops {
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route(
            "/healthz",
            web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
        )
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let accounts = match (ops.accounts.loaded(), ops.accounts.age()) {
        (true, Some(age)) => json!({"loaded": true, "ageSeconds": age.as_secs()}),
        _ => json!({"loaded": false}),
    };
    let detail = json!({
        "accounts": accounts,
        "spoolDepth": ops.spool.depth(),
        "evidenceInMemory": ops.spool.in_memory(),
    });
    if ops.draining.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready", "reason": "shutting down", "detail": detail
        }));
    }
    if !ops.accounts.loaded() && ops.started.elapsed() < ops.accounts_wait {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready",
            "reason": "the accounts have not been read from Postgres yet; ready anyway once \
                       GATEWAY_ACCOUNTS_WAIT has passed",
            "detail": detail
        }));
    }
    HttpResponse::Ok().json(json!({"status": "ready", "detail": detail}))
}

async fn metrics(ops: web::Data<Ops>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(ops.metrics.render())
}
