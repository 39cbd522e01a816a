//! `recon-api`: read-only ledger queries for finance teams and partners, behind
//! `Authorization: Bearer <key>` with roles and per-account scopes. An account outside
//! a key's scope answers exactly as one that does not exist (404).

pub mod auth;
pub mod transactions;

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use clap::Parser;
use recon_common::telemetry::LogFormat;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

/// recon-api: the reconciled ledger over HTTP.
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    after_help = "Secrets, from the environment only (or from the file NAME_FILE names):\n  \
                  DATABASE_URL  Postgres, required (postgres://...?sslmode=verify-full)"
)]
pub struct Settings {
    #[arg(long, env = "API_ADDR", default_value = "127.0.0.1:8082")]
    pub addr: SocketAddr,
    /// Postgres: `DATABASE_URL` (environment only; [`Settings::load`]).
    #[arg(skip = SecretString::from(""))]
    pub database_url: SecretString,
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

impl Settings {
    /// Flags and environment, then DATABASE_URL from the environment (or the file
    /// DATABASE_URL_FILE names), never from a flag.
    pub fn load() -> anyhow::Result<Self> {
        let mut settings = Settings::parse();
        settings.read_secrets(&recon_common::secrets::ProcessEnv)?;
        Ok(settings)
    }

    /// Reads DATABASE_URL (required) from `env`.
    pub fn read_secrets(&mut self, env: &dyn recon_common::secrets::Env) -> anyhow::Result<()> {
        self.database_url = recon_common::secrets::read(env, "DATABASE_URL")?.ok_or_else(|| {
            anyhow::anyhow!(
                "DATABASE_URL is not set: set it (or DATABASE_URL_FILE) to the ledger's Postgres, \
                 e.g. postgres://USER:PASSWORD@HOST:5432/helcim_recon?sslmode=verify-full"
            )
        })?;
        Ok(())
    }
}

/// What handlers share.
#[derive(Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// Binds and returns the server (not yet awaited) and its port.
pub async fn build(settings: &Settings) -> anyhow::Result<(Server, u16)> {
    let pool = recon_store::database::connect(settings.database_url.expose_secret()).await?;
    let state = web::Data::new(AppState {
        pool,
        metrics: recon_common::metrics::install(),
    });
    let listener = TcpListener::bind(settings.addr)
        .with_context(|| format!("Failed to listen on {} (is the port taken?)", settings.addr))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .route(
                "/v1/accounts/{account_id}/transactions/{transaction_id}",
                web::get().to(transactions::get_one),
            )
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
    })
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, port))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "reason": "Postgres is unreachable"})),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
