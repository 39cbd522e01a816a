//! The loops of the close and the alerts, started once per worker
//! ([`spawn`]): every `RECON_ATTRIBUTION_SWEEP_INTERVAL`, escalate → close → gauges;
//! beside it, the outbox publisher and the webhook deliveries, each every second.
//! All read "now" from the configured clock, and all stop on the worker's shutdown.
//! Every replica runs them: the database decides who does what (see each module).

use std::sync::Arc;
use std::time::Duration;

use recon_queue::Broker;
use recon_store::SecretCipher;
use recon_store::attribution::alert_webhooks::AlertWebhooks;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::settings::AttributionSettings;
use super::webhooks::RetryPolicy;
use super::{close, escalate, gauges, publish, webhooks};

/// How often the publisher and the deliveries look for work.
const POLL: Duration = Duration::from_secs(1);

/// Starts the loops (when attribution runs in this worker).
pub fn spawn(
    pool: PgPool,
    broker: Arc<Broker>,
    cipher: Arc<SecretCipher>,
    settings: &AttributionSettings,
    shutdown: CancellationToken,
) {
    if !settings.enabled {
        return;
    }
    tokio::spawn(sweep_loop(pool.clone(), settings.clone(), shutdown.clone()));
    tokio::spawn(publish_loop(
        pool.clone(),
        broker,
        settings.clone(),
        shutdown.clone(),
    ));
    let store = AlertWebhooks::new(pool, cipher);
    tokio::spawn(webhook_loop(store, settings.clone(), shutdown));
}

/// Sleeps `every`, or returns false on shutdown.
async fn tick(every: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(every) => true,
    }
}

async fn sweep_loop(pool: PgPool, settings: AttributionSettings, shutdown: CancellationToken) {
    let clock = settings.clock();
    let calendar = settings.close_timezone;
    let gauges = gauges::Gauges::default();
    loop {
        // Escalate first: a month whose close just passed is expired, not escalated
        // (escalation only looks at months still open).
        let now = clock.now();
        if let Err(error) = escalate::sweep(&pool, calendar, &settings.escalate_at, now).await {
            tracing::warn!(%error, "attribution escalation sweep failed; retrying next sweep");
        }
        let now = clock.now();
        match close::sweep(&pool, calendar, settings.freeze_delay(), now).await {
            Ok(closed) if closed.expired > 0 => {
                tracing::info!(
                    expired = closed.expired,
                    "attribution gaps expired at the close"
                )
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "attribution close sweep failed; retrying next sweep")
            }
        }
        if let Err(error) = gauges.refresh(&pool, calendar, clock.now()).await {
            tracing::warn!(%error, "attribution gauges not refreshed");
        }
        if !tick(settings.sweep_interval(), &shutdown).await {
            return;
        }
    }
}

async fn publish_loop(
    pool: PgPool,
    broker: Arc<Broker>,
    settings: AttributionSettings,
    shutdown: CancellationToken,
) {
    let clock = settings.clock();
    let mut failures = 0_u32;
    loop {
        match publish::publish_pending(&pool, &broker, clock.now()).await {
            // A full batch: more may wait, go again at once.
            Ok(done) if done.published > 0 => {
                failures = 0;
                continue;
            }
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(%error, failures, "attribution alerts not published; retrying");
                }
            }
        }
        if !tick(POLL, &shutdown).await {
            return;
        }
    }
}

async fn webhook_loop(
    store: AlertWebhooks,
    settings: AttributionSettings,
    shutdown: CancellationToken,
) {
    let clock = settings.clock();
    let policy = RetryPolicy::default();
    let http = webhooks::client(&policy);
    loop {
        match webhooks::deliver_due(&store, &http, &policy, clock.now()).await {
            Ok((delivered, failed)) if delivered + failed > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "alert webhook deliveries not attempted"),
        }
        if !tick(POLL, &shutdown).await {
            return;
        }
    }
}
