//! The consumer loop: up to `prefetch` jobs at once, each acknowledged only after its
//! fate is settled, and never left hanging:
//!
//! - a job that panics is caught and requeued (the delivery limit stops a message that
//!   always panics); a job whose task ends any other way is requeued by its drop;
//! - a job whose retry or dead-letter publish fails is requeued;
//! - while Postgres does not answer, consuming pauses and the messages held wait for
//!   it rather than burning retries;
//! - on shutdown the consumer is cancelled but its channel stays open until the jobs
//!   in flight have acknowledged on it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use recon_queue::topology::DELIVERY_LIMIT;
use recon_queue::{Broker, Job, PublishError, WebhookEnvelope, WorkConsumer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::inflight::{ConsumerHealth, database_answers};
use crate::ledger::{Ledger, dead_outcome};
use crate::policy::{Policy, Step};
use crate::process::{Fate, Processor};
use crate::redeliveries;

/// The work done per message; [`Processor`] in production, something simpler in tests.
pub trait Work: Send + Sync + 'static {
    /// What the envelope leads to.
    fn process(&self, envelope: &WebhookEnvelope) -> impl Future<Output = Fate> + Send;
    /// Notes in the ledger that the message, replayed `replays` times, is confirmed in
    /// the dead-letter queue.
    fn dead_lettered(
        &self,
        envelope: &WebhookEnvelope,
        reason: &str,
        replays: u32,
    ) -> impl Future<Output = ()> + Send;
    /// Whether a copy of this webhook replayed at least `replays` times is already
    /// confirmed in the dead-letter queue (as [`Work::dead_lettered`] noted). A duplicate
    /// (Helcim retried a webhook the receiver had queued; a publish confirmed after its
    /// timeout) then needs no second dead letter. False when unsure: a second dead
    /// letter is harmless, a lost one is not.
    fn already_dead_lettered(
        &self,
        envelope: &WebhookEnvelope,
        replays: u32,
    ) -> impl Future<Output = bool> + Send;
}

impl Work for Processor {
    fn process(&self, envelope: &WebhookEnvelope) -> impl Future<Output = Fate> + Send {
        Processor::process(self, envelope)
    }

    async fn dead_lettered(&self, envelope: &WebhookEnvelope, reason: &str, replays: u32) {
        note_dead_letter(&self.ledger, envelope, reason, replays).await;
    }

    async fn already_dead_lettered(&self, envelope: &WebhookEnvelope, replays: u32) -> bool {
        dead_letter_noted(&self.ledger, envelope, replays).await
    }
}

/// [`Work::dead_lettered`] on the ledger.
pub async fn note_dead_letter(
    ledger: &Ledger,
    envelope: &WebhookEnvelope,
    reason: &str,
    replays: u32,
) {
    let outcome = dead_outcome(reason, replays);
    if let Err(error) = ledger.complete_dead(envelope, &outcome).await {
        tracing::warn!(%error, "could not note the dead letter in the ledger (the message is in the dead-letter queue)");
    }
}

/// [`Work::already_dead_lettered`] on the ledger.
pub async fn dead_letter_noted(ledger: &Ledger, envelope: &WebhookEnvelope, replays: u32) -> bool {
    match ledger.dead_lettered_after(envelope).await {
        Ok(noted) => noted.is_some_and(|noted| noted >= replays),
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether the webhook is dead-lettered already; dead-lettering this copy too");
            false
        }
    }
}

/// Everything the loop needs besides the work.
#[derive(Debug, Clone)]
pub struct Consuming {
    pub broker: Arc<Broker>,
    /// For the pause (is Postgres answering?) and the redelivery counts.
    pub pool: PgPool,
    pub prefetch: u16,
    pub policy: Policy,
    pub health: Arc<ConsumerHealth>,
    /// On shutdown, how long a job may still run before it is abandoned and its
    /// message requeued (a job waiting for Helcim's hourly budget could take an hour).
    pub shutdown_grace: Duration,
}

/// [`Consuming::shutdown_grace`] in production: well inside Kubernetes' 60 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Runs until `shutdown`; reconnects by itself when the broker goes away.
pub async fn run<W: Work>(work: Arc<W>, consuming: Consuming, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let health = Arc::clone(&consuming.health);
    let exporter = {
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            loop {
                health.export();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut draining = None;
    while !shutdown.is_cancelled() {
        let broker = Arc::clone(&consuming.broker);
        let mut consumer =
            match WorkConsumer::start(broker, consuming.prefetch, "recon-worker").await {
                Ok(consumer) => consumer,
                Err(error) => {
                    tracing::error!(%error, "cannot consume the work queue yet; retrying in 1 s");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
        health.set_consuming(true);
        tracing::info!(prefetch = consuming.prefetch, "consuming the work queue");
        loop {
            // While Postgres is down, take nothing new: what was prefetched waits
            // unacknowledged, and comes back to the queue if the worker stops.
            if health.is_paused() && !health.resumed(&shutdown).await {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                next = consumer.next() => match next {
                    Some(Ok(job)) => {
                        tracker.spawn(handle(
                            Arc::clone(&work),
                            job,
                            consuming.clone(),
                            shutdown.clone(),
                        ));
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "the consumer failed; reconnecting");
                        break;
                    }
                    None => {
                        tracing::warn!("the consumer stopped; reconnecting");
                        break;
                    }
                }
            }
        }
        health.set_consuming(false);
        if shutdown.is_cancelled() {
            // Stop deliveries, but keep the channel: the jobs in flight ack on it.
            consumer.cancel().await;
            draining = Some(consumer);
        }
    }
    tracker.close();
    tracker.wait().await;
    if let Some(consumer) = draining {
        consumer.close().await;
    }
    exporter.abort();
    health.export();
    tracing::info!("every job in flight finished");
}

async fn handle<W: Work>(work: Arc<W>, job: Job, ctx: Consuming, shutdown: CancellationToken) {
    let _in_flight = ctx.health.track(job.received);
    let started = Instant::now();
    let envelope = match &job.envelope {
        Ok(envelope) => envelope.clone(),
        Err(reason) => {
            let reason = reason.clone();
            settle(job.dead_letter(&reason).await.map(|_| "dead"), &reason);
            return;
        }
    };
    let replays = job.replays;
    let key = counted_redelivery(&job, &envelope);
    if let Some(key) = &key {
        let Some(deliveries) = redeliveries_counted(&ctx, key, &shutdown).await else {
            settle(job.requeue().await.map(|_| "requeued"), "shutting down");
            return;
        };
        if deliveries > DELIVERY_LIMIT as u32 {
            let reason = format!(
                "delivered {deliveries} times without being settled (the worker crashed or failed on it every time)"
            );
            let result = job.dead_letter(&reason).await;
            if result.is_ok() {
                work.dead_lettered(&envelope, &reason, replays).await;
                redeliveries::forget(&ctx.pool, key).await;
            }
            settle(result.map(|_| "dead"), &reason);
            return;
        }
    }
    let (result, reason) = loop {
        let processed = tokio::select! {
            processed = AssertUnwindSafe(work.process(&envelope)).catch_unwind() => processed,
            () = grace_over(&shutdown, ctx.shutdown_grace) => {
                // Dropped mid-way: an open database transaction rolls back; a commit
                // that landed makes the redelivery a harmless duplicate.
                let reason = "shutting down: the job did not finish within the grace period".to_string();
                tracing::warn!(webhook_id = %envelope.webhook_id, "{reason}; its message goes back to the queue");
                break (job.requeue().await.map(|_| "requeued"), reason);
            }
        };
        let fate = match processed {
            Ok(fate) => fate,
            Err(panic) => {
                let reason = panic_text(&panic);
                metrics::counter!("worker_job_panics_total").increment(1);
                tracing::error!(webhook_id = %envelope.webhook_id, reason, "the job panicked; its message goes back to the queue");
                break (job.requeue().await.map(|_| "panicked"), reason);
            }
        };
        let since_received = since_received(&envelope, job.replayed_at_micros);
        let step = match ctx.policy.step(&fate, job.message_retries, since_received) {
            Step::CheckDatabase(reason) if database_answers(&ctx.pool).await => {
                // Postgres answers: the failure was this message's (counted).
                ctx.policy
                    .step(&Fate::Retry(reason), job.message_retries, since_received)
            }
            Step::CheckDatabase(reason) => {
                ctx.health.pause_for_database(&ctx.pool);
                if ctx.health.resumed(&shutdown).await {
                    continue;
                }
                break (job.requeue().await.map(|_| "requeued"), reason);
            }
            step => step,
        };
        break match step {
            Step::Ack(outcome) => (job.ack().await.map(|_| outcome), String::new()),
            Step::Retry { reason, counted } => (
                job.retry_later(&reason, counted).await.map(|_| "retry"),
                reason,
            ),
            Step::Dead(reason) if work.already_dead_lettered(&envelope, replays).await => {
                tracing::warn!(webhook_id = %envelope.webhook_id, reason, "a copy of this webhook is in the dead-letter queue already; this duplicate is acknowledged");
                (job.ack().await.map(|_| "duplicate"), reason)
            }
            Step::Dead(reason) => {
                let result = job.dead_letter(&reason).await;
                if result.is_ok() {
                    work.dead_lettered(&envelope, &reason, replays).await;
                }
                (result.map(|_| "dead"), reason)
            }
            // Decided above; should it ever get here, the message goes back.
            Step::CheckDatabase(reason) => (job.requeue().await.map(|_| "requeued"), reason),
        };
    };
    // Settled for good (not given back to the queue): its count is no longer needed.
    if let (Some(key), Ok(outcome)) = (&key, &result)
        && !matches!(*outcome, "panicked" | "requeued")
    {
        redeliveries::forget(&ctx.pool, key).await;
    }
    metrics::histogram!("worker_job_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(webhook_id = %envelope.webhook_id, account = %envelope.account_id, "job settled");
    settle(result, &reason);
}

/// The key to count this delivery under, when the broker does not count it: a
/// redelivery from a classic queue (quorum queues set `x-delivery-count`).
fn counted_redelivery(job: &Job, envelope: &WebhookEnvelope) -> Option<String> {
    (job.redelivered && job.delivery_count.is_none()).then(|| {
        redeliveries::key(
            &envelope.account_id,
            &envelope.webhook_id,
            job.retries,
            job.replays,
        )
    })
}

/// The deliveries of `key` so far, waiting for Postgres if it is down; `None` on
/// shutdown. If Postgres answers but the count fails (a missing migration), the
/// message is processed uncounted rather than held.
async fn redeliveries_counted(
    ctx: &Consuming,
    key: &str,
    shutdown: &CancellationToken,
) -> Option<u32> {
    loop {
        match redeliveries::count(&ctx.pool, key).await {
            Ok(deliveries) => return Some(deliveries),
            Err(error) if database_answers(&ctx.pool).await => {
                tracing::error!(%error, "cannot count a redelivery (is the database migrated?)");
                return Some(0);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot count a redelivery: waiting for Postgres");
                ctx.health.pause_for_database(&ctx.pool);
                if !ctx.health.resumed(shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// Resolves `grace` after `shutdown` was cancelled.
async fn grace_over(shutdown: &CancellationToken, grace: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// How long ago the webhook was received, or replayed from the dead-letter queue if
/// that was later: a replay gets a fresh give-up window for outages.
fn since_received(envelope: &WebhookEnvelope, replayed_at_micros: Option<i64>) -> Duration {
    let now = chrono::Utc::now().timestamp_micros();
    let from = envelope
        .received_at_micros
        .max(replayed_at_micros.unwrap_or(i64::MIN));
    Duration::from_micros(now.saturating_sub(from).max(0) as u64)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Logs and counts how a job ended. A failed settle has already given the message
/// back to the queue (or its channel closed, which does the same): it is redelivered,
/// and the ledger's keys make that harmless.
fn settle(result: Result<&'static str, PublishError>, reason: &str) {
    match result {
        Ok(outcome) => {
            metrics::counter!("worker_jobs_total", "outcome" => outcome).increment(1);
            if !matches!(
                outcome,
                "reconciled" | "duplicate" | "recorded" | "registered" | "not registered"
            ) {
                tracing::warn!(outcome, reason, "job deferred");
            }
        }
        Err(error) => {
            metrics::counter!("worker_jobs_total", "outcome" => "unsettled").increment(1);
            tracing::error!(%error, reason, "could not settle the job with RabbitMQ; it goes back to the queue");
        }
    }
}
