//! Faults on demand: API errors and slow answers, hidden transactions, and webhook
//! duplicates, drops and reordering. Rates draw from a seeded generator; `failNext`
//! gives tests an exact count.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Everything that can go wrong, switchable at run time (`PUT /sim/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    pub api: ApiFaults,
    pub webhooks: WebhookFaults,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiFaults {
    /// Share of API requests answered with `errorStatus` (0.0–1.0).
    pub error_rate: f64,
    /// 500, 502, 503 or 504.
    pub error_status: u16,
    /// The next this-many API requests fail with `errorStatus`, whatever the rate.
    pub fail_next: u32,
    /// Share of API requests answered only after `slowMs`.
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Transactions the API answers 404 for (and leaves out of lists), as if Helcim
    /// had not recorded them yet.
    pub hidden_transaction_ids: BTreeSet<u64>,
    /// Transactions `GET /card-transactions/{id}` answers with a body cut off half way
    /// (not JSON at all), as a broken proxy or a truncated answer would.
    pub unreadable_transaction_ids: BTreeSet<u64>,
    /// Batches `GET /card-batches/{id}` answers as JSON whose `dateClosed` is not a
    /// time, as a change of format at Helcim would.
    pub unreadable_batch_ids: BTreeSet<u64>,
}

impl Default for ApiFaults {
    fn default() -> Self {
        ApiFaults {
            error_rate: 0.0,
            error_status: 503,
            fail_next: 0,
            slow_rate: 0.0,
            slow_ms: 2_000,
            hidden_transaction_ids: BTreeSet::new(),
            unreadable_transaction_ids: BTreeSet::new(),
            unreadable_batch_ids: BTreeSet::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookFaults {
    /// Share of events delivered a second time, later, with the same `webhook-id`.
    pub duplicate_rate: f64,
    /// Share of events never delivered (only a sweep of the API can find them).
    pub drop_rate: f64,
    /// Events are shuffled within windows of this many (0 or 1 keeps order).
    pub reorder_window: usize,
    /// Share of events held back before their first attempt, by up to `delayMaxMs`.
    pub delay_rate: f64,
    pub delay_max_ms: u64,
}

/// What to do to one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFault {
    None,
    Fail(u16),
    Slow(Duration),
}

impl ApiFaults {
    /// Decides the fate of one request, spending one of `fail_next` if any are left.
    pub fn decide(&mut self, rng: &mut impl Rng) -> ApiFault {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return ApiFault::Fail(self.error_status);
        }
        if self.error_rate > 0.0 && rng.random_bool(self.error_rate.clamp(0.0, 1.0)) {
            return ApiFault::Fail(self.error_status);
        }
        if self.slow_rate > 0.0 && rng.random_bool(self.slow_rate.clamp(0.0, 1.0)) {
            return ApiFault::Slow(Duration::from_millis(self.slow_ms));
        }
        ApiFault::None
    }
}

/// The unreadable answer for a transaction: its JSON cut off half way.
pub fn truncated(json: &serde_json::Value) -> String {
    let text = json.to_string();
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

/// The unreadable answer for a batch: valid JSON whose `dateClosed` is no time.
pub fn misdated(mut json: serde_json::Value) -> serde_json::Value {
    json["dateClosed"] = serde_json::Value::from("sometime yesterday");
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn fail_next_fails_exactly_that_many() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut faults = ApiFaults {
            fail_next: 2,
            error_status: 502,
            ..ApiFaults::default()
        };
        assert_eq!(faults.decide(&mut rng), ApiFault::Fail(502));
        assert_eq!(faults.decide(&mut rng), ApiFault::Fail(502));
        assert_eq!(faults.decide(&mut rng), ApiFault::None);
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut faults = ApiFaults {
            error_rate: 0.25,
            ..ApiFaults::default()
        };
        let failures = (0..4000)
            .filter(|_| matches!(faults.decide(&mut rng), ApiFault::Fail(_)))
            .count();
        assert!((800..1200).contains(&failures), "{failures}");
    }

    #[test]
    fn unreadable_answers_are_broken_the_documented_way() {
        let json = serde_json::json!({"transactionId": 1, "amount": "1.00"});
        let cut = truncated(&json);
        assert!(
            serde_json::from_str::<serde_json::Value>(&cut).is_err(),
            "{cut}"
        );
        assert!(json.to_string().starts_with(&cut));
        assert_eq!(misdated(json)["dateClosed"], "sometime yesterday");
    }

    #[test]
    fn faults_read_from_partial_json() {
        let faults: Faults = serde_json::from_str(r#"{"api":{"failNext":3}}"#).unwrap();
        assert_eq!(faults.api.fail_next, 3);
        assert_eq!(faults.api.error_status, 503);
        assert_eq!(faults.webhooks, WebhookFaults::default());
    }
}
