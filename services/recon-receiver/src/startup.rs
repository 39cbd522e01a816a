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
    pub clock: Clock,
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
            clock,
        });
        let listener = TcpListener::bind(settings.addr).with_context(|| {
            format!("Failed to listen on {} (is the port taken?)", settings.addr)
        })?;
        let port = listener
            .local_addr()
            .context("Failed to read the bound address")?
            .port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .route(
                    "/webhooks/helcim/{account_id}",
                    web::post().to(webhook::receive),
                )
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(health::metrics))
        })
        .disable_signals()
        .shutdown_timeout(25);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = server
            .listen(listener)
            .context("Failed to start the HTTP server")?
            .run();
        Ok(Application {
            port,
            server,
            broker,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully (in-flight requests finish) when asked.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`Application::handle`], then closes RabbitMQ.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await.context("the HTTP server failed");
        self.background.cancel();
        self.broker.close().await;
        tracing::info!("recon-receiver stopped");
        result
    }
}
