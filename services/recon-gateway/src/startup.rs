//! Building and running the gateway: `Application::build` checks the settings, opens
//! the spool (replaying what an earlier run left), starts the evidence writer and the
//! account refresh, and binds (port 0 in tests). Postgres need not be up: the gateway
//! forwards without it and catches up when it is back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use recon_store::SecretCipher;
use recon_store::database::PoolOptions;
use recon_store::evidence::EvidenceStore;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

use crate::accounts::AccountDirectory;
use crate::config::{Settings, gateway_keys};
use crate::ops::{self, Ops};
use crate::proxy::{self, Gateway};
use crate::spool::{Spool, SpoolConfig};
use crate::writer::{self, Writer};

/// How long the first read of the accounts may delay the start.
const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(3);

/// A bound, configured gateway, not yet serving.
#[allow(missing_debug_implementations)] // actix's `Server` has no `Debug`
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<(u16, Server)>,
    ops: web::Data<Ops>,
    spool: Arc<Spool>,
    background: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
    drain_timeout: Duration,
}

/// Stops the gateway gracefully: not ready at once, requests in flight finish.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Stopper {
    ops: web::Data<Ops>,
    handle: ServerHandle,
}

impl Stopper {
    pub async fn stop(&self) {
        self.ops.drain();
        self.handle.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let base_url = helcim_client::ClientConfig::check_base_url(&settings.helcim_api_base_url)?;
        let base_url = base_url.as_str().trim_end_matches('/').to_string();
        let cipher = gateway_keys(SecretCipher::from_env()?)?;
        let lookup_keys = cipher.lookup_keys().to_vec();

        let pool_options = PoolOptions::from_env()?;
        let url = secrecy::ExposeSecret::expose_secret(&settings.database_url);
        // Lazy: the gateway starts, and forwards, while Postgres is down.
        let pool = PgPoolOptions::new()
            .max_connections(pool_options.max_connections)
            .acquire_timeout(pool_options.acquire_timeout)
            .connect_lazy_with(pool_options.apply(recon_store::database::parse_url(url)?));

        let background = CancellationToken::new();
        let accounts = Arc::new(AccountDirectory::new(
            pool.clone(),
            Arc::new(cipher),
            settings.lookup_timeout,
        ));
        match tokio::time::timeout(FIRST_LOAD_TIMEOUT, accounts.refresh()).await {
            Ok(Ok(count)) => tracing::info!(accounts = count, "accounts read"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "the accounts could not be read at start; retrying every second")
            }
            Err(_) => tracing::warn!("Postgres did not answer at start; retrying every second"),
        }
        accounts.spawn_refresh(settings.account_refresh, background.clone());

        let spool = Arc::new(Spool::open(SpoolConfig {
            dir: settings.spool_dir.clone(),
            segment_bytes: settings.spool_segment_bytes.max(1),
            memory_capacity: settings.memory_queue,
        })?);
        spool.spawn_syncer(settings.spool_fsync_interval, background.clone());
        let writer = Writer::new(
            Arc::clone(&spool),
            EvidenceStore::new(pool),
            settings.write_batch,
        )
        .spawn(background.clone());

        let ops = web::Data::new(Ops {
            accounts: Arc::clone(&accounts),
            spool: Arc::clone(&spool),
            metrics: crate::metrics::install(),
            started: Instant::now(),
            accounts_wait: settings.accounts_wait,
            draining: AtomicBool::new(false),
        });
        let gateway = web::Data::new(Gateway {
            base_url,
            accounts,
            lookup_keys,
            default_partner_token: settings.partner_token.clone(),
            spool: Arc::clone(&spool),
            max_body_bytes: settings.max_body_bytes,
            upstream_timeout: settings.upstream_timeout,
        });
        let ops_here = settings.metrics_addr.is_none();
        let (listener, port) = bind(settings.addr, "GATEWAY_ADDR")?;
        let server = {
            let (ops, gateway) = (ops.clone(), gateway.clone());
            let mut server = HttpServer::new(move || {
                App::new()
                    .app_data(gateway.clone())
                    .app_data(ops.clone())
                    // One client per worker thread: its connections live on that thread.
                    .app_data(web::Data::new(proxy::upstream_client()))
                    .configure(|config| {
                        if ops_here {
                            ops::routes(config);
                        }
                    })
                    .default_service(web::to(proxy::forward))
            })
            .disable_signals()
            // Longer than the upstream timeout, so a request waiting on Helcim finishes.
            .shutdown_timeout(settings.upstream_timeout.as_secs() + 5);
            if settings.workers > 0 {
                server = server.workers(settings.workers);
            }
            server
                .listen(listener)
                .context("Failed to start the HTTP server")?
                .run()
        };
        let metrics = match settings.metrics_addr {
            Some(addr) => {
                let (listener, port) = bind(addr, "METRICS_ADDR")?;
                let ops = ops.clone();
                let server = HttpServer::new(move || {
                    App::new().app_data(ops.clone()).configure(ops::routes)
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
                Some((port, server))
            }
            None => None,
        };
        Ok(Application {
            port,
            server,
            metrics,
            ops,
            spool,
            background,
            writer,
            drain_timeout: settings.drain_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            ops: self.ops.clone(),
            handle: self.server.handle(),
        }
    }

    /// Serves until stopped, then writes what is spooled (for at most
    /// `GATEWAY_DRAIN_TIMEOUT`; the rest waits in the spool for the next start).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let result = self.server.await.context("the HTTP server failed");
        let drained = writer::wait_until_drained(&self.spool, self.drain_timeout).await;
        if drained {
            // Let the writer delete the last segment, so the next start replays nothing.
            self.spool.finish_active();
            let deadline = Instant::now() + Duration::from_secs(1);
            while self.spool.segments().is_ok_and(|s| !s.is_empty()) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.background.cancel();
        let _ = self.writer.await;
        let spool = Arc::clone(&self.spool);
        match tokio::task::spawn_blocking(move || spool.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the last fsync of the spool failed"),
            Err(error) => tracing::error!(%error, "the last fsync of the spool panicked"),
        }
        if drained {
            tracing::info!("every piece of evidence is in Postgres");
        } else {
            tracing::warn!(
                spooled = self.spool.depth(),
                "evidence not yet in Postgres stays in the spool and is written at the next start"
            );
        }
        if self.spool.in_memory() > 0 {
            tracing::error!(
                records = self.spool.in_memory(),
                "EVIDENCE LOST: records held in memory (the spool could not be written) could not reach Postgres before the exit"
            );
        }
        if let Some(handle) = metrics {
            handle.stop(true).await;
        }
        tracing::info!("recon-gateway stopped");
        result
    }
}

fn bind(addr: SocketAddr, name: &str) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("Failed to listen on {name} {addr} (is the port taken?)"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}
