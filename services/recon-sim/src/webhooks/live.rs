//! Webhooks for what happens at run time (payments, checkouts, Smart Terminal
//! outcomes, sales from Helcim's own tools, connected accounts): each event is sent as
//! it happens, once deliveries have started, with the webhook faults in force at that
//! moment (drops, duplicates, delays) drawn from a seeded generator. Reordering needs
//! a window of events and so applies only to the generated plan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::deliver::{Attempt, DeliveryLog, WebhookConfig, http_client};
use super::plan::{PlannedDelivery, webhook_id};
use crate::faults::WebhookFaults;

/// One event to announce.
#[derive(Clone)]
pub struct LiveEvent {
    pub account_id: String,
    pub event_type: &'static str,
    pub transaction_id: Option<u64>,
    pub body: String,
    /// The account's verifier tokens (every one signs).
    pub verifier_tokens: Vec<String>,
}

impl std::fmt::Debug for LiveEvent {
    /// Leaves out the verifier tokens and the body (a `connectedAccount` body holds an
    /// API token).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEvent")
            .field("account_id", &self.account_id)
            .field("event_type", &self.event_type)
            .field("transaction_id", &self.transaction_id)
            .finish_non_exhaustive()
    }
}

/// The queue of run-time events, drained by [`run`].
#[derive(Debug)]
pub struct LiveWebhooks {
    sender: mpsc::UnboundedSender<LiveEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<LiveEvent>>>,
}

impl Default for LiveWebhooks {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        LiveWebhooks {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl LiveWebhooks {
    /// Queues an event (dropped silently once the simulator is stopping).
    pub fn send(&self, event: LiveEvent) {
        let _ = self.sender.send(event);
    }

    /// The receiving end, once: for the task that delivers.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<LiveEvent>> {
        self.receiver.lock().expect("lock poisoned").take()
    }
}

/// Delivers run-time events until cancelled, after `started` turns true.
pub async fn run(
    mut events: mpsc::UnboundedReceiver<LiveEvent>,
    log: Arc<DeliveryLog>,
    config: WebhookConfig,
    mut started: watch::Receiver<bool>,
    cancel: CancellationToken,
    seed: u64,
    faults: impl Fn() -> WebhookFaults,
) {
    tokio::select! {
        _ = started.wait_for(|started| *started) => {}
        _ = cancel.cancelled() => return,
    }
    let client = http_client(&config);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11FE_0E7E_2750);
    let mut tasks = JoinSet::new();
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = cancel.cancelled() => break,
        };
        let faults = faults();
        let mut delivery = PlannedDelivery {
            webhook_id: webhook_id(&mut rng),
            account_id: event.account_id.clone(),
            event_type: event.event_type,
            transaction_id: event.transaction_id,
            body: event.body,
            duplicate: false,
            delay_ms: 0,
        };
        if roll(&mut rng, faults.drop_rate) {
            log.push_dropped(delivery);
            continue;
        }
        if faults.delay_max_ms > 0 && roll(&mut rng, faults.delay_rate) {
            delivery.delay_ms = rng.random_range(1..=faults.delay_max_ms);
        }
        let duplicate = roll(&mut rng, faults.duplicate_rate);
        let attempt = || Attempt {
            client: client.clone(),
            log: Arc::clone(&log),
            tokens: Arc::new(HashMap::from([(
                event.account_id.clone(),
                event.verifier_tokens.clone(),
            )])),
            slots: Arc::clone(&slots),
            config: config.clone(),
            cancel: cancel.clone(),
        };
        let (first, second) = (attempt(), attempt());
        let index = log.push_live(&delivery);
        let log = Arc::clone(&log);
        tasks.spawn(async move {
            first.deliver(index, delivery.clone(), None).await;
            if duplicate {
                // A second delivery of the same event, a little later, same id.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let copy = PlannedDelivery {
                    duplicate: true,
                    delay_ms: 0,
                    ..delivery
                };
                let index = log.push_live(&copy);
                second.deliver(index, copy, None).await;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    tasks.shutdown().await;
}

fn roll(rng: &mut ChaCha8Rng, rate: f64) -> bool {
    rate > 0.0 && rng.random_bool(rate.clamp(0.0, 1.0))
}
