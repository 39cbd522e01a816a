//! Runs the simulator: in-process for tests (`RunningSim::start` on port 0) or from
//! the `recon-sim` binary.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, error, web};
use anyhow::Context;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::clock::{BatchClosing, SimClock};
use crate::faults::Faults;
use crate::limits::RateLimits;
use crate::settings::PaymentSettings;
use crate::state::SimState;
use crate::webhooks::WebhookConfig;
use crate::{GenerateConfig, api, control, generate};

/// Everything that shapes a simulator run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub generate: GenerateConfig,
    pub limits: RateLimits,
    pub faults: Faults,
    /// Where to deliver webhooks; `None` sends none.
    pub webhooks: Option<WebhookConfig>,
    /// Start delivering as soon as the server is up (otherwise on
    /// `POST /sim/deliveries/start`).
    pub deliver_on_start: bool,
    pub workers: usize,
    /// Partner tokens, idempotency-key lifetime, Smart Terminal delay.
    pub payments: PaymentSettings,
    /// Where the clock starts (`None`: now) and how fast it runs (sim seconds per
    /// real second).
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
    pub clock_speed: u32,
    /// When open batches close during the run; `None`: never.
    pub batch_closing: Option<BatchClosing>,
}

impl Default for SimConfig {
    /// Port 0 on loopback, default activity, Helcim's limits, no faults, no webhooks,
    /// Helcim's test partner token valid.
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            generate: GenerateConfig::default(),
            limits: RateLimits::HELCIM,
            faults: Faults::default(),
            webhooks: None,
            deliver_on_start: false,
            workers: 2,
            payments: PaymentSettings::default(),
            clock_start: None,
            clock_speed: 1,
            batch_closing: None,
        }
    }
}

/// A simulator serving HTTP.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    state: Arc<SimState>,
    handle: ServerHandle,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningSim {
    /// Generates the activity, binds, and serves in the background.
    pub async fn start(config: SimConfig) -> anyhow::Result<Self> {
        let activity = generate(&config.generate);
        let mut state = SimState::with_payments(
            activity,
            config.generate.seed,
            config.limits,
            config.faults,
            config.webhooks,
            config.payments,
        );
        state.set_time(
            SimClock::new(config.clock_start, config.clock_speed),
            config.batch_closing,
        );
        let state = Arc::new(state);
        state.spawn_live_webhooks();
        if config.batch_closing.is_some() {
            // Batches close on time even when nobody asks.
            let ticking = Arc::clone(&state);
            tokio::spawn(async move {
                while !ticking.shutdown.is_cancelled() {
                    ticking.tick();
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            });
        }
        let listener = TcpListener::bind(config.listen).with_context(|| {
            format!("Failed to listen on {} (is the port taken?)", config.listen)
        })?;
        let addr = listener
            .local_addr()
            .context("Failed to read the bound address")?;
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::JsonConfig::default().error_handler(|err, _| {
                    let message = format!("the JSON body was not accepted: {err}");
                    error::InternalError::from_response(
                        err,
                        HttpResponse::BadRequest().json(json!({"error": message})),
                    )
                    .into()
                }))
                .configure(api::configure)
                .configure(control::configure)
        })
        .workers(config.workers.max(1))
        .disable_signals()
        .listen(listener)
        .context("Failed to start the HTTP server")?
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        let sim = RunningSim {
            addr,
            state,
            handle,
            server,
        };
        if config.deliver_on_start {
            sim.state.start_deliveries().map_err(anyhow::Error::msg)?;
        }
        Ok(sim)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Helcim API base, e.g. `http://127.0.0.1:8070/v2`.
    pub fn api_base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    /// Where `/sim/...` lives.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Starts webhook delivery (see [`SimState::start_deliveries`]).
    pub fn start_deliveries(&self) -> Result<bool, &'static str> {
        self.state.start_deliveries()
    }

    /// Stops delivering, then stops serving after answering requests in flight.
    pub async fn stop(self) {
        self.state.shutdown.cancel();
        self.handle.stop(true).await;
        let _ = self.server.await;
    }

    /// Waits until the server stops on its own (it does not, unless it fails).
    pub async fn serve_until_stopped(&mut self) -> anyhow::Result<()> {
        (&mut self.server)
            .await
            .context("the HTTP server task failed")?
            .context("the HTTP server failed")
    }
}
