//! Building and running the receiver: `Application::build` binds (port 0 in tests),
//! connects to RabbitMQ (or keeps trying in the background), and serves until stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use recon_queue::{Broker, EnvelopePublisher};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::accounts::{AccountDirectory, AccountSource};
use crate::config::Settings;
use crate::routes::{health, webhook};

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub accounts: Arc<AccountDirectory>,
    pub publisher: EnvelopePublisher,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    /// `RECEIVER_BODY_TIMEOUT_MS`: the longest a body may take to arrive.
    pub body_timeout: Duration,
    pub clock: Clock,
    /// Seals secrets found in bodies for the worker (`RECON_INTAKE_PUBLIC_KEY`).
    pub intake_key: Option<recon_store::intake::IntakePublicKey>,
}

/// Where "now" comes from when checking `webhook-timestamp`: the system, or a fixed
/// instant so tests can probe the ±300 s edges without racing the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    pub fn now(self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            Clock::Fixed(now) => now,
        }
    }
}

/// A bound, configured receiver, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    /// The separate health and metrics server (METRICS_ADDR), when configured.
    metrics: Option<(u16, Server)>,
    broker: Arc<Broker>,
    background: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("broker", &self.broker)
            .finish()
    }
}

impl Application {
    pub async fn build(
        settings: &Settings,
        sources: Vec<Box<dyn AccountSource>>,
    ) -> anyhow::Result<Self> {
        Application::build_with_clock(settings, sources, Clock::System).await
    }

    pub async fn build_with_clock(
        settings: &Settings,
        sources: Vec<Box<dyn AccountSource>>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let accounts = AccountDirectory::load(sources)
            .await
            .context("Failed to load the accounts")?;
        let background = CancellationToken::new();
        accounts.spawn_refresh(
            Duration::from_secs(settings.account_refresh_secs.max(1)),
            background.clone(),
        );

        let mut broker_config = settings.amqp.broker_config("recon-receiver");
        broker_config.channels = settings.amqp_channels.max(1);
        broker_config.confirm_timeout = settings.confirm_timeout();
        let broker = Arc::new(Broker::new(broker_config));
        if let Err(error) = broker.connect().await {
            // Start anyway: /readyz says not ready and the watchdog keeps trying, so a
            // broker that comes up after us is picked up without a restart.
            tracing::error!(%error, "RabbitMQ is unavailable at start; webhooks get 503 until it is back");
        }
        broker.spawn_watchdog(Duration::from_secs(1), background.clone());

        let state = web::Data::new(AppState {
            accounts,
            publisher: EnvelopePublisher::new(Arc::clone(&broker)),
            metrics: crate::metrics::install(),
            max_body_bytes: settings.max_body_bytes,
            body_timeout: Duration::from_millis(settings.body_timeout_ms.max(1)),
            clock,
            intake_key: settings.intake_key()?,
        });
        // With METRICS_ADDR, the webhook port serves the webhook path alone.
        let health_here = settings.metrics_addr.is_none();
        let (port, server) = serve(settings.addr, settings.workers, 25, {
            let state = state.clone();
            move |config| {
                config.app_data(state.clone()).route(
                    "/webhooks/helcim/{account_id}",
                    web::post().to(webhook::receive),
                );
                if health_here {
                    health_routes(config);
                }
            }
        })?;
        let metrics = match settings.metrics_addr {
            Some(addr) => Some(serve(addr, 1, 1, move |config| {
                config.app_data(state.clone());
                health_routes(config);
            })?),
            None => None,
        };
        Ok(Application {
            port,
            server,
            metrics,
            broker,
            background,
        })
    }

    /// The port of the separate health and metrics server, when METRICS_ADDR is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully (in-flight requests finish) when asked.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`Application::handle`], then closes RabbitMQ (and
    /// the metrics server, which outlives the webhook one so probes see the drain).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let result = self.server.await.context("the HTTP server failed");
        if let Some(handle) = metrics {
            handle.stop(true).await;
        }
        self.background.cancel();
        self.broker.close().await;
        tracing::info!("recon-receiver stopped");
        result
    }
}

fn health_routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}

/// Binds `addr` and builds a server with the routes `configure` adds.
fn serve(
    addr: std::net::SocketAddr,
    workers: usize,
    shutdown_secs: u64,
    configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("Failed to listen on {addr} (is the port taken?)"))?;
    let port = listener
        .local_addr()
        .context("Failed to read the bound address")?
        .port();
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(TracingLogger::default())
            .configure(configure.clone())
    })
    .disable_signals()
    .shutdown_timeout(shutdown_secs);
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server
        .listen(listener)
        .context("Failed to start the HTTP server")?
        .run();
    Ok((port, server))
}
