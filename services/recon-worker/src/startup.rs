//! Wiring: Postgres, the Helcim clients, RabbitMQ, the consumer, and the health server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use helcim_client::AccountLimits;
use recon_queue::{Broker, BrokerState};
use recon_store::connected::ConnectedAccounts;
use recon_store::intake::IntakeSecretKeys;
use recon_store::{AccountStore, Purpose, SecretCipher};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::clients::HelcimClients;
use crate::config::{Limits, Settings};
use crate::connected::ConnectedIntake;
use crate::consume::Consuming;
use crate::inflight::{ConsumerHealth, database_answers};
use crate::ledger::Ledger;
use crate::policy::Policy;
use crate::process::Processor;

struct Health {
    broker: Arc<Broker>,
    pool: PgPool,
    consumer: Arc<ConsumerHealth>,
    stuck_after: Duration,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// A configured worker, not yet consuming.
pub struct Worker {
    port: u16,
    server: Server,
    broker: Arc<Broker>,
    processor: Arc<Processor>,
    consuming: Consuming,
    background: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("port", &self.port).finish()
    }
}

impl Worker {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        helcim_client::ClientConfig::check_base_url(&settings.helcim_api_base_url)?;
        // The worker needs the API- and partner-token keys; never the verifier key.
        let cipher = Arc::new(SecretCipher::from_env()?.restricted_to(
            &[
                Purpose::ApiToken,
                Purpose::PartnerToken,
                Purpose::AlertWebhook,
            ],
            true,
        ));
        let pool = recon_store::database::connect(settings.database_url()).await?;
        let store = AccountStore::new(pool.clone(), Arc::clone(&cipher));
        let connected = ConnectedIntake {
            store: ConnectedAccounts::new(pool.clone(), Arc::clone(&cipher)),
            keys: IntakeSecretKeys::from_env()?,
            register: settings.register_connected_accounts,
        };
        if let Some(token) = &settings.api_token {
            store
                .upsert_tokens(&settings.account_id, token, settings.partner_token.as_ref())
                .await
                .context("Failed to store HELCIM_API_TOKEN for HELCIM_ACCOUNT_ID")?;
        }
        // The gateway finds accounts by their token's keyed fingerprint and cannot
        // compute it for a stored token itself (it holds no API-token key).
        if cipher.lookup_key().is_ok() {
            match store.fingerprint_api_tokens().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "fingerprinted API tokens for the gateway"),
                Err(error) => {
                    tracing::warn!(%error, "could not fingerprint API tokens for the gateway; `reconctl keys reencrypt` does it too")
                }
            }
        }
        let limits = match settings.helcim_limits {
            Limits::Helcim => AccountLimits::HELCIM,
            Limits::Unlimited => AccountLimits::unlimited(),
        };
        let clients = HelcimClients::new(store, &settings.helcim_api_base_url, limits);
        let mut processor = Processor::new(
            Ledger::new(pool.clone()),
            clients,
            settings.open_batch_refresh(),
        );
        processor.connected = Some(connected);
        let processor = Arc::new(processor);

        let mut broker_config = settings.amqp.broker_config("recon-worker");
        broker_config.channels = 2;
        let broker = Arc::new(Broker::new(broker_config));
        if let Err(error) = broker.connect().await {
            tracing::error!(%error, "RabbitMQ is unavailable at start; consuming once it is back");
        }
        let background = CancellationToken::new();
        broker.spawn_watchdog(Duration::from_secs(1), background.clone());
        crate::attribution::engine::spawn(pool.clone(), &settings.attribution, background.clone());
        crate::attribution::alerting::spawn(
            pool.clone(),
            Arc::clone(&broker),
            Arc::clone(&cipher),
            &settings.attribution,
            background.clone(),
        );

        crate::sweep::schedule::spawn(
            crate::sweep::Sweeper::new(
                Ledger::new(pool.clone()),
                crate::sweep::Clients::OfProcessor(Arc::clone(&processor)),
                settings.sweep.grace(),
            ),
            &settings.sweep,
            background.clone(),
        );

        let consumer = Arc::new(ConsumerHealth::default());
        let consuming = Consuming {
            broker: Arc::clone(&broker),
            pool: pool.clone(),
            prefetch: settings.prefetch.max(1),
            policy: Policy {
                max_retries: settings.max_retries,
                give_up_after: settings.retry_give_up,
            },
            health: Arc::clone(&consumer),
            shutdown_grace: crate::consume::SHUTDOWN_GRACE,
        };
        let health = web::Data::new(Health {
            broker: Arc::clone(&broker),
            pool,
            consumer,
            stuck_after: settings.stuck_after,
            metrics: recon_common::metrics::install(),
        });
        let listener = TcpListener::bind(settings.addr).with_context(|| {
            format!("Failed to listen on {} (is the port taken?)", settings.addr)
        })?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(health.clone())
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
                )
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Worker {
            port,
            server,
            broker,
            processor,
            consuming,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Consumes until `shutdown`, then lets the jobs in flight finish and stops.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        crate::consume::run(self.processor, self.consuming, shutdown).await;
        self.background.cancel();
        self.broker.close().await;
        handle.stop(true).await;
        let _ = server.await;
        tracing::info!("recon-worker stopped");
        Ok(())
    }
}

/// Ready: Postgres answers, RabbitMQ is connected and not blocking, a consumer is
/// registered, and no message has been held longer than `WORKER_STUCK_AFTER`.
async fn readyz(health: web::Data<Health>) -> HttpResponse {
    let database = database_answers(&health.pool).await;
    let broker = health.broker.state();
    let consuming = health.consumer.is_consuming();
    let oldest = health.consumer.oldest_unacked();
    let stuck = is_stuck(oldest, health.stuck_after);
    let body = json!({
        "database": database,
        "rabbitmq": broker.as_str(),
        "consuming": consuming,
        "pausedForDatabase": health.consumer.is_paused(),
        "oldestUnackedSeconds": oldest.as_secs(),
        "stuck": stuck,
    });
    if is_ready(database, broker, consuming, stuck) {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A message held longer than `stuck_after` means the consumer stopped settling.
fn is_stuck(oldest_unacked: Duration, stuck_after: Duration) -> bool {
    oldest_unacked > stuck_after
}

/// Ready only when every part works: a blocked broker, a missing consumer or a stuck
/// one each make the worker unready.
fn is_ready(database: bool, broker: BrokerState, consuming: bool, stuck: bool) -> bool {
    database && broker == BrokerState::Ready && consuming && !stuck
}

async fn metrics(health: web::Data<Health>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(health.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_fails_when_blocked_not_consuming_or_stuck() {
        assert!(is_ready(true, BrokerState::Ready, true, false));
        assert!(!is_ready(true, BrokerState::Blocked, true, false));
        assert!(!is_ready(true, BrokerState::Disconnected, true, false));
        assert!(!is_ready(true, BrokerState::Ready, false, false));
        assert!(!is_ready(true, BrokerState::Ready, true, true));
        assert!(!is_ready(false, BrokerState::Ready, true, false));
        let limit = Duration::from_secs(600);
        assert!(!is_stuck(Duration::from_secs(600), limit));
        assert!(is_stuck(Duration::from_secs(601), limit));
    }
}
