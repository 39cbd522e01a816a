//! Reading gaps as the attribution scenario compares them, and watching the gap list
//! until it settles, noting when each gap (and each of its statuses) first showed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::attribution_stack::AttributionStack;

/// A gap as the test compares it: everything the API says but ids and times.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub account: String,
    pub transaction: Option<i64>,
    pub class: String,
    pub reason: Option<String>,
    pub amount: String,
    pub currency: String,
    pub month: String,
    pub status: String,
    pub resolution: Option<String>,
}

pub fn seen(gap: &Value) -> Expected {
    let text = |v: &Value| v.as_str().map(str::to_string);
    Expected {
        account: text(&gap["accountId"]).unwrap_or_default(),
        transaction: gap["transactionId"].as_i64(),
        class: text(&gap["class"]).unwrap_or_default(),
        reason: text(&gap["reason"]),
        amount: text(&gap["amount"]).unwrap_or_default(),
        currency: text(&gap["currency"]).unwrap_or_default(),
        month: text(&gap["month"]).unwrap_or_default(),
        status: text(&gap["status"]).unwrap_or_default(),
        resolution: text(&gap["resolution"]),
    }
}

/// Polls the admin's gap list until `done` holds for it, noting when each gap (by
/// id) was first seen and when its status last changed.
pub async fn watch(
    s: &AttributionStack,
    query: &str,
    within: Duration,
    seen_at: &mut BTreeMap<(i64, String), DateTime<Utc>>,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let gaps = s.gaps(&s.admin_key, query).await;
        let now = Utc::now();
        for gap in &gaps {
            let key = (gap["id"].as_i64().unwrap(), gap["status"].to_string());
            seen_at.entry(key).or_insert(now);
        }
        if done(&gaps) {
            return gaps;
        }
        assert!(
            Instant::now() < deadline,
            "the gaps did not settle within {within:?}; they are:\n{}",
            serde_json::to_string_pretty(&gaps).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn first_seen(
    seen_at: &BTreeMap<(i64, String), DateTime<Utc>>,
    gap: &Value,
    status: &str,
) -> DateTime<Utc> {
    seen_at[&(gap["id"].as_i64().unwrap(), format!("\"{status}\""))]
}

pub fn find<'a>(gaps: &'a [Value], class: &str, transaction: Option<i64>) -> Option<&'a Value> {
    gaps.iter()
        .find(|g| g["class"] == class && g["transactionId"].as_i64() == transaction)
}
