//! Which webhooks to send, in what order, before anything is sent: one per event,
//! with the seeded webhook faults (duplicates, drops, reordering) applied.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::activity::Activity;
use crate::faults::WebhookFaults;
use crate::render;

/// One webhook to deliver (a duplicate repeats an earlier one's id and body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedDelivery {
    pub webhook_id: String,
    pub account_id: String,
    pub event_type: &'static str,
    /// The transaction a `cardTransaction` event announces.
    pub transaction_id: Option<u64>,
    pub body: String,
    /// True for the second delivery of an event already in the plan.
    pub duplicate: bool,
    /// Held back this long before the first attempt (a late delivery).
    pub delay_ms: u64,
}

/// The deliveries in sending order, and the events that will never be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub deliveries: Vec<PlannedDelivery>,
    pub dropped: Vec<PlannedDelivery>,
}

/// Builds the plan for `activity`; the same seed and faults give the same plan.
pub fn plan(activity: &Activity, faults: &WebhookFaults, seed: u64) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0F4E_B400);
    let mut events: Vec<(chrono::DateTime<chrono::Utc>, PlannedDelivery)> = Vec::new();
    for tx in &activity.transactions {
        events.push((
            tx.created_at,
            event(
                &mut rng,
                &tx.account_id,
                "cardTransaction",
                Some(tx.transaction_id),
                render::card_transaction_webhook(tx),
            ),
        ));
    }
    for cancel in &activity.terminal_cancels {
        events.push((
            cancel.cancelled_at,
            event(
                &mut rng,
                &cancel.account_id,
                "terminalCancel",
                None,
                render::terminal_cancel_webhook(cancel),
            ),
        ));
    }
    events.sort_by_key(|(at, delivery)| (*at, delivery.transaction_id));
    let mut plan = Plan::default();
    for (_, delivery) in events {
        if faults.drop_rate > 0.0 && rng.random_bool(faults.drop_rate.clamp(0.0, 1.0)) {
            plan.dropped.push(delivery);
        } else {
            plan.deliveries.push(delivery);
        }
    }
    if faults.reorder_window > 1 {
        for window in plan.deliveries.chunks_mut(faults.reorder_window) {
            window.shuffle(&mut rng);
        }
    }
    if faults.delay_rate > 0.0 && faults.delay_max_ms > 0 {
        for delivery in &mut plan.deliveries {
            if rng.random_bool(faults.delay_rate.clamp(0.0, 1.0)) {
                delivery.delay_ms = rng.random_range(1..=faults.delay_max_ms);
            }
        }
    }
    if faults.duplicate_rate > 0.0 {
        plan.deliveries = with_duplicates(
            std::mem::take(&mut plan.deliveries),
            faults.duplicate_rate,
            &mut rng,
        );
    }
    plan
}

/// Repeats some deliveries 1 to 50 places after their original.
fn with_duplicates(
    deliveries: Vec<PlannedDelivery>,
    rate: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<PlannedDelivery> {
    let mut pending: BTreeMap<usize, Vec<PlannedDelivery>> = BTreeMap::new();
    let mut out = Vec::with_capacity(deliveries.len());
    for (index, delivery) in deliveries.into_iter().enumerate() {
        if rng.random_bool(rate.clamp(0.0, 1.0)) {
            let copy = PlannedDelivery {
                duplicate: true,
                ..delivery.clone()
            };
            pending
                .entry(index + rng.random_range(1..=50))
                .or_default()
                .push(copy);
        }
        out.push(delivery);
        out.extend(pending.remove(&index).unwrap_or_default());
    }
    out.extend(pending.into_values().flatten());
    out
}

fn event(
    rng: &mut ChaCha8Rng,
    account_id: &str,
    event_type: &'static str,
    transaction_id: Option<u64>,
    body: String,
) -> PlannedDelivery {
    PlannedDelivery {
        webhook_id: webhook_id(rng),
        account_id: account_id.to_string(),
        event_type,
        transaction_id,
        body,
        duplicate: false,
        delay_ms: 0,
    }
}

/// A fresh `webhook-id`: `msg_` and 24 letters or digits.
pub(super) fn webhook_id(rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("msg_{suffix}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::GenerateConfig;

    fn activity() -> Activity {
        crate::generate(&GenerateConfig::default())
    }

    #[test]
    fn without_faults_every_event_is_sent_once_in_time_order() {
        let activity = activity();
        let plan = plan(&activity, &WebhookFaults::default(), 1);
        let events = activity.transactions.len() + activity.terminal_cancels.len();
        assert_eq!(plan.deliveries.len(), events);
        assert!(plan.dropped.is_empty());
        let ids: HashSet<_> = plan.deliveries.iter().map(|d| &d.webhook_id).collect();
        assert_eq!(ids.len(), events);
        let tx_ids: Vec<u64> = plan
            .deliveries
            .iter()
            .filter_map(|d| d.transaction_id)
            .collect();
        assert!(tx_ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn faults_duplicate_drop_and_reorder_without_losing_track() {
        let activity = activity();
        let faults = WebhookFaults {
            duplicate_rate: 0.1,
            drop_rate: 0.05,
            reorder_window: 10,
            delay_rate: 0.1,
            delay_max_ms: 500,
        };
        let plan = plan(&activity, &faults, 1);
        let events = activity.transactions.len() + activity.terminal_cancels.len();
        let originals = plan.deliveries.iter().filter(|d| !d.duplicate).count();
        assert_eq!(originals + plan.dropped.len(), events);
        assert!(!plan.dropped.is_empty());
        let duplicates: Vec<_> = plan.deliveries.iter().filter(|d| d.duplicate).collect();
        assert!(!duplicates.is_empty());
        for duplicate in duplicates {
            let original = plan
                .deliveries
                .iter()
                .position(|d| d.webhook_id == duplicate.webhook_id && !d.duplicate)
                .unwrap();
            let copy = plan
                .deliveries
                .iter()
                .position(|d| std::ptr::eq(d, duplicate))
                .unwrap();
            assert!(copy > original, "a duplicate comes after its original");
            assert_eq!(plan.deliveries[original].body, duplicate.body);
        }
        let tx_ids: Vec<u64> = plan
            .deliveries
            .iter()
            .filter(|d| !d.duplicate)
            .filter_map(|d| d.transaction_id)
            .collect();
        assert!(
            tx_ids.windows(2).any(|w| w[0] > w[1]),
            "some events arrive out of order"
        );
    }
}
