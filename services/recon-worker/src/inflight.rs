//! What `/readyz` and `/metrics` need to know about the consumer: whether it is
//! consuming, whether it paused for the database, and how old the oldest message
//! still unacknowledged is (a consumer that stopped settling shows here first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The consumer's state, shared with the health server.
#[derive(Debug)]
pub struct ConsumerHealth {
    in_flight: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
    consuming: AtomicBool,
    paused: watch::Sender<bool>,
}

impl Default for ConsumerHealth {
    fn default() -> Self {
        ConsumerHealth {
            in_flight: Mutex::default(),
            next_id: AtomicU64::new(0),
            consuming: AtomicBool::new(false),
            paused: watch::channel(false).0,
        }
    }
}

/// Holds one message's place in the in-flight set until dropped (settled, or its
/// task ended any other way).
#[derive(Debug)]
pub struct InFlight<'a> {
    health: &'a ConsumerHealth,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.health
            .in_flight
            .lock()
            .expect("lock poisoned")
            .remove(&self.id);
    }
}

impl ConsumerHealth {
    /// Notes a message taken off the queue, from `since`.
    pub fn track(&self, since: Instant) -> InFlight<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.in_flight
            .lock()
            .expect("lock poisoned")
            .insert(id, since);
        InFlight { health: self, id }
    }

    /// How long the oldest unacknowledged message has been held (zero when none).
    pub fn oldest_unacked(&self) -> Duration {
        let in_flight = self.in_flight.lock().expect("lock poisoned");
        in_flight
            .values()
            .min()
            .map_or(Duration::ZERO, Instant::elapsed)
    }

    /// Messages held right now.
    pub fn unacked(&self) -> usize {
        self.in_flight.lock().expect("lock poisoned").len()
    }

    /// Updates `worker_oldest_unacked_seconds` and `worker_unacked_messages`.
    pub fn export(&self) {
        metrics::gauge!("worker_oldest_unacked_seconds").set(self.oldest_unacked().as_secs_f64());
        metrics::gauge!("worker_unacked_messages").set(self.unacked() as f64);
        metrics::gauge!("worker_paused_for_database").set(f64::from(u8::from(self.is_paused())));
    }

    pub(crate) fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
    }

    /// A consumer is registered with the broker right now.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    /// Consuming is paused because Postgres does not answer.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Pauses consuming until Postgres answers again (probing it every second).
    pub(crate) fn pause_for_database(&self, pool: &PgPool) {
        let newly = self
            .paused
            .send_if_modified(|paused| !std::mem::replace(paused, true));
        if !newly {
            return;
        }
        tracing::error!(
            "Postgres does not answer: consuming paused, messages held until it is back"
        );
        let (pool, paused) = (pool.clone(), self.paused.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if database_answers(&pool).await {
                    tracing::info!("Postgres answers again: consuming resumed");
                    paused.send_replace(false);
                    return;
                }
            }
        });
    }

    /// Waits until consuming is not paused; false when `shutdown` came first.
    pub(crate) async fn resumed(&self, shutdown: &CancellationToken) -> bool {
        let mut paused = self.paused.subscribe();
        loop {
            if !*paused.borrow_and_update() {
                return true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                changed = paused.changed() => if changed.is_err() { return false },
            }
        }
    }
}

/// Whether Postgres answers a trivial query within 5 s.
pub async fn database_answers(pool: &PgPool) -> bool {
    let ping = sqlx::query("SELECT 1").execute(pool);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), ping).await,
        Ok(Ok(_))
    )
}
