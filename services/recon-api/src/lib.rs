//! `recon-api`: ledger queries for finance teams and partners, the receipts partners
//! report (`POST /v1/attribution/receipts`), and attribution gaps and month reports
//! (`/v1/attribution/gaps`, `/v1/attribution/report`), behind
//! `Authorization: Bearer <key>` with roles and per-account scopes. An account outside
//! a key's scope answers exactly as one that does not exist (404).
//!
//! `/healthz`, `/readyz` and `/metrics` are served on `API_ADDR`, or only on
//! `METRICS_ADDR` when that is set, so the public listener carries nothing but `/v1/`.

pub mod attribution;
pub mod auth;
pub mod client_address;
pub mod guard;
pub mod keys;
pub mod transactions;

use std::net::{SocketAddr, TcpListener};
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use clap::Parser;
use recon_attribution::{Clock, CloseCalendar};
use recon_common::telemetry::LogFormat;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing_actix_web::TracingLogger;

use crate::guard::Authenticator;

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
    /// Where `/metrics`, `/readyz` and `/healthz` are served instead of `API_ADDR`.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Postgres: `DATABASE_URL` (environment only; [`Settings::load`]).
    #[arg(skip = SecretString::from(""))]
    pub database_url: SecretString,
    /// Failed API key attempts allowed per client address per minute before 429.
    #[arg(long, env = "API_AUTH_FAILURES_PER_MINUTE", default_value = "10")]
    pub auth_failures_per_minute: NonZeroU32,
    /// Proxies in front of the API (addresses or networks, comma-separated, e.g. the
    /// ingress's pod network): from them, the right-most `X-Forwarded-For` address not
    /// itself listed is the client the failure limit counts. Unset: the TCP peer.
    /// (Spelled `std::vec::Vec` so clap parses the whole list as one value and an
    /// empty variable means none.)
    #[arg(
        long,
        env = "API_TRUSTED_PROXIES",
        default_value = "",
        value_parser = client_address::parse_proxies
    )]
    pub trusted_proxies: std::vec::Vec<ipnet::IpNet>,
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// The time zone whose calendar month Helcim closes (an IANA name): the months
    /// and deadlines of attribution reports. The worker's must be the same.
    #[arg(long, env = "RECON_CLOSE_TIMEZONE", default_value = "America/Edmonton", value_parser = CloseCalendar::from_name)]
    pub close_timezone: CloseCalendar,
    /// Tests and drills only: a file holding seconds to add to the system clock (the
    /// worker's `RECON_CLOCK_OFFSET_FILE`, so live reports and gap actions see the
    /// same "now" as the engine).
    #[arg(long, env = "RECON_CLOCK_OFFSET_FILE")]
    pub clock_offset_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// Flags and environment, then DATABASE_URL from the environment (or the file
    /// DATABASE_URL_FILE names), never from a flag.
    pub fn load() -> anyhow::Result<Self> {
        recon_common::secrets::load(Self::read_secrets)
    }

    /// Reads DATABASE_URL (required) from `env`.
    pub fn read_secrets(&mut self, env: &dyn recon_common::secrets::Env) -> anyhow::Result<()> {
        use recon_common::secrets::{LEDGER_DATABASE_URL, required};
        self.database_url = required(env, "DATABASE_URL", LEDGER_DATABASE_URL)?;
        Ok(())
    }
}

/// What handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Requests' pool.
    pub pool: PgPool,
    /// `/readyz`'s own single connection: a request pool saturated by slow queries
    /// must not make the instance look dead (or hide that Postgres is).
    pub readiness: PgPool,
    pub auth: Authenticator,
    /// `API_TRUSTED_PROXIES`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// `RECON_CLOSE_TIMEZONE`: months and closes of attribution reports.
    pub calendar: CloseCalendar,
    /// "Now" for live reports and gap actions.
    pub clock: Clock,
}

/// The bound servers (not yet running) and what tests look into.
#[allow(missing_debug_implementations)] // actix's `Server` has no `Debug`
pub struct Api {
    /// `/v1/...` (and the operations endpoints when there is no `METRICS_ADDR`).
    pub server: Server,
    pub port: u16,
    /// The operations server on `METRICS_ADDR`, and its port.
    pub ops: Option<(Server, u16)>,
    pub state: web::Data<AppState>,
}

impl Api {
    /// Handles to stop every server.
    pub fn handles(&self) -> Vec<ServerHandle> {
        let mut handles = vec![self.server.handle()];
        handles.extend(self.ops.as_ref().map(|(server, _)| server.handle()));
        handles
    }

    /// Runs until every server stopped.
    pub async fn run(self) -> std::io::Result<()> {
        match self.ops {
            Some((ops, _)) => tokio::try_join!(self.server, ops).map(|_| ()),
            None => self.server.await,
        }
    }
}

/// Connects, binds and returns the servers (not yet running).
pub async fn build(settings: &Settings) -> anyhow::Result<Api> {
    let url = settings.database_url.expose_secret();
    let pool = recon_store::database::connect(url).await?;
    let options: PgConnectOptions = url.parse().context("DATABASE_URL is not a Postgres URL")?;
    let readiness = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(READY_TIMEOUT)
        .connect_lazy_with(options);
    let state = web::Data::new(AppState {
        auth: Authenticator::new(pool.clone(), settings.auth_failures_per_minute),
        trusted_proxies: settings.trusted_proxies.clone(),
        pool,
        readiness,
        metrics: recon_common::metrics::install(),
        calendar: settings.close_timezone,
        clock: match &settings.clock_offset_file {
            Some(path) => {
                tracing::warn!(path = %path.display(), "RECON_CLOCK_OFFSET_FILE is set: the clock is shifted (tests and drills only)");
                Clock::with_offset_file(path)
            }
            None => Clock::system(),
        },
    });
    let ops_separate = settings.metrics_addr.is_some();
    let (listener, port) = bind(settings.addr, "API_ADDR")?;
    let api_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            .app_data(api_state.clone())
            .configure(v1_routes)
            .configure(|cfg| {
                if !ops_separate {
                    ops_routes(cfg);
                }
            })
    })
    .disable_signals()
    .listen(listener)?
    .run();
    let ops = match settings.metrics_addr {
        Some(addr) => {
            let (listener, port) = bind(addr, "METRICS_ADDR")?;
            let ops_state = state.clone();
            let ops = HttpServer::new(move || {
                App::new().app_data(ops_state.clone()).configure(ops_routes)
            })
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
            Some((ops, port))
        }
        None => None,
    };
    Ok(Api {
        server,
        port,
        ops,
        state,
    })
}

fn bind(addr: SocketAddr, name: &str) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("Failed to listen on {name} {addr} (is the port taken?)"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

fn v1_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/v1/accounts/{account_id}/transactions/{transaction_id}",
        web::get().to(transactions::get_one),
    )
    .route(
        "/v1/attribution/receipts",
        web::post().to(attribution::receipts::report),
    )
    .route(
        "/v1/attribution/gaps",
        web::get().to(attribution::gaps::list),
    )
    .route(
        "/v1/attribution/gaps/{id}",
        web::get().to(attribution::gaps::get_one),
    )
    .route(
        "/v1/attribution/gaps/{id}/acknowledge",
        web::post().to(attribution::gaps::acknowledge),
    )
    .route(
        "/v1/attribution/gaps/{id}/resolve",
        web::post().to(attribution::gaps::resolve),
    )
    .route(
        "/v1/attribution/report",
        web::get().to(attribution::report::get),
    )
    .route(
        "/v1/attribution/report/notes",
        web::get().to(attribution::report::notes),
    )
    .route("/v1/api-keys", web::get().to(keys::list))
    .route(
        "/v1/api-keys/{id_or_prefix}",
        web::delete().to(keys::revoke),
    );
}

fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/healthz",
        web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
    )
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(metrics));
}

/// How long `/readyz` waits for Postgres before saying it is unreachable.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let probe = sqlx::query("SELECT 1").execute(&state.readiness);
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(_)) => HttpResponse::Ok().json(json!({"status": "ready"})),
        _ => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "reason": "Postgres is unreachable"})),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
