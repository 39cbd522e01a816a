//! The consumer loop: up to `prefetch` jobs at once, each acknowledged only after its
//! fate is settled. On shutdown it stops taking messages and lets the jobs in flight
//! finish; anything prefetched but not started goes back to the queue when the
//! channel closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use recon_queue::{Broker, Deferred, Job, WorkConsumer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::process::{Fate, Processor};

/// Runs until `shutdown`; reconnects by itself when the broker goes away.
pub async fn run(
    processor: Arc<Processor>,
    broker: Arc<Broker>,
    prefetch: u16,
    max_retries: u32,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    while !shutdown.is_cancelled() {
        let mut consumer =
            match WorkConsumer::start(Arc::clone(&broker), prefetch, "recon-worker").await {
                Ok(consumer) => consumer,
                Err(error) => {
                    tracing::error!(%error, "cannot consume the work queue yet; retrying in 1 s");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
        tracing::info!(prefetch, "consuming the work queue");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    consumer.cancel().await;
                    break;
                }
                next = consumer.next() => match next {
                    Some(Ok(job)) => {
                        let processor = Arc::clone(&processor);
                        tracker.spawn(handle(processor, job, max_retries));
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
    }
    tracker.close();
    tracker.wait().await;
    tracing::info!("every job in flight finished");
}

async fn handle(processor: Arc<Processor>, job: Job, max_retries: u32) {
    let started = Instant::now();
    let envelope = match &job.envelope {
        Ok(envelope) => envelope.clone(),
        Err(reason) => {
            let reason = reason.clone();
            settle(
                job.dead_letter(&reason).await.map(|_| "dead"),
                "undecodable",
                &reason,
            );
            return;
        }
    };
    let fate = processor.process(&envelope).await;
    let (label, result) = match &fate {
        Fate::Done(outcome) => (*outcome, job.ack().await.map(|_| *outcome)),
        Fate::Retry(reason) => {
            let deferred = job.retry_later(reason, max_retries).await;
            if let Ok(Deferred::Dead) = &deferred {
                dead_lettered(&processor, &envelope, reason).await;
            }
            (
                "retry",
                deferred.map(|d| if d == Deferred::Dead { "dead" } else { "retry" }),
            )
        }
        Fate::Dead(reason) => {
            let result = job.dead_letter(reason).await;
            dead_lettered(&processor, &envelope, reason).await;
            ("dead", result.map(|_| "dead"))
        }
    };
    metrics::histogram!("worker_job_seconds").record(started.elapsed().as_secs_f64());
    let reason = match &fate {
        Fate::Retry(r) | Fate::Dead(r) => r.as_str(),
        Fate::Done(_) => "",
    };
    tracing::debug!(webhook_id = %envelope.webhook_id, account = %envelope.account_id, outcome = label, "job settled");
    settle(result, label, reason);
}

/// Logs and counts how a job ended. A failed ack or publish leaves the message
/// unacknowledged: RabbitMQ redelivers it, and the ledger's keys make that harmless.
fn settle(result: Result<&'static str, recon_queue::PublishError>, label: &str, reason: &str) {
    match result {
        Ok(outcome) => {
            metrics::counter!("worker_jobs_total", "outcome" => outcome).increment(1);
            if outcome != "reconciled" && outcome != "duplicate" && outcome != "recorded" {
                tracing::warn!(outcome, reason, "job deferred");
            }
        }
        Err(error) => {
            metrics::counter!("worker_jobs_total", "outcome" => "unsettled").increment(1);
            tracing::error!(%error, label, "could not settle the job with RabbitMQ; it will be redelivered");
        }
    }
}

async fn dead_lettered(
    processor: &Processor,
    envelope: &recon_queue::WebhookEnvelope,
    reason: &str,
) {
    let outcome = format!("dead-lettered: {reason}");
    if let Err(error) = processor.ledger.complete_dead(envelope, &outcome).await {
        tracing::warn!(%error, "could not note the dead letter in the ledger (the message is in the dead-letter queue)");
    }
}
