use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::startup::AppState;

/// Alive: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: webhooks can be queued right now (RabbitMQ connected, not blocking).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.publisher.broker().is_ready() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "reason": "RabbitMQ is unreachable or blocking publishers"}))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
