use actix_web::{HttpResponse, web};
use recon_queue::BrokerState;
use serde_json::json;

use crate::startup::AppState;

/// Alive: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: webhooks can be queued right now (RabbitMQ connected, not blocking).
/// `rabbitmq` says which: `ready`, `blocked` (a memory or disk alarm: the connection
/// is kept, publishes wait) or `disconnected`.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.publisher.broker().state() {
        BrokerState::Ready => {
            HttpResponse::Ok().json(json!({"status": "ready", "rabbitmq": "ready"}))
        }
        BrokerState::Blocked => HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready",
            "rabbitmq": "blocked",
            "reason": "RabbitMQ is blocking publishers (a memory or disk alarm)"
        })),
        BrokerState::Disconnected => HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready",
            "rabbitmq": "disconnected",
            "reason": "RabbitMQ is unreachable"
        })),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
