//! Prometheus gauges of the attribution engine, refreshed each sweep (the worker's
//! `/metrics`):
//!
//! - `attribution_gaps_open{class}`: unresolved (open or acknowledged) gaps by class;
//! - `attribution_money_at_risk{currency}`: the money of those gaps (orphan evidence
//!   excluded, as in the report), in decimal units of the currency (`19.99`) as a
//!   float: fine for a dashboard, never for accounting (the report has the exact
//!   amounts);
//! - `attribution_seconds_to_close`: seconds until the current month closes.
//!
//! Every replica reports the same database-wide numbers: aggregate with `max`, not
//! `sum`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use recon_attribution::{CloseCalendar, GapClass};
use recon_money::format_minor_units;
use sqlx::{PgPool, Row};

const CLASSES: [GapClass; 4] = [
    GapClass::TokenRejected,
    GapClass::TokenMissing,
    GapClass::Unattributed,
    GapClass::OrphanEvidence,
];

/// At most this many currency labels; the rest are summed under `other`.
pub const MAX_CURRENCIES: usize = 32;

/// The `currency` label values of money at risk, bounded: the currency comes from
/// stored rows (Helcim's text, not a fixed list), and every distinct label value is a
/// time series kept forever by Prometheus. A code that is not three capital letters,
/// and any beyond the first [`MAX_CURRENCIES`] codes, are summed under `other`
/// (a sign to look at the report, which has the exact amounts).
pub fn currency_labels(sums: &[(String, i64)]) -> BTreeMap<String, i64> {
    let mut codes: BTreeMap<String, i64> = BTreeMap::new();
    let mut other = 0_i64;
    let mut odd = false;
    for (currency, amount) in sums {
        let code = currency.trim();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            *codes.entry(code.to_string()).or_default() += amount;
        } else {
            other = other.saturating_add(*amount);
            odd = true;
        }
    }
    let mut labels: BTreeMap<String, i64> = BTreeMap::new();
    for (n, (code, amount)) in codes.into_iter().enumerate() {
        if n < MAX_CURRENCIES {
            labels.insert(code, amount);
        } else {
            other = other.saturating_add(amount);
            odd = true;
        }
    }
    if odd {
        labels.insert("other".to_string(), other);
    }
    labels
}

/// Remembers the currencies reported, so one whose gaps all went away drops to 0
/// instead of keeping its last value.
#[derive(Debug, Default)]
pub struct Gauges {
    currencies: Mutex<BTreeSet<String>>,
}

/// Minor units as decimal units for a gauge, without float arithmetic on money.
pub fn decimal_units(minor: i64) -> f64 {
    format_minor_units(minor, 2).parse().unwrap_or(0.0)
}

impl Gauges {
    pub async fn refresh(
        &self,
        pool: &PgPool,
        calendar: CloseCalendar,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let counts = sqlx::query(
            "SELECT class, count(*) AS n FROM attribution_gaps
              WHERE status IN ('open', 'acknowledged') GROUP BY class",
        )
        .fetch_all(pool)
        .await?;
        for class in CLASSES {
            let n: i64 = counts
                .iter()
                .find(|row| row.get::<&str, _>("class") == class.as_str())
                .map_or(0, |row| row.get("n"));
            metrics::gauge!("attribution_gaps_open", "class" => class.as_str()).set(n as f64);
        }
        let money = sqlx::query(
            "SELECT currency, sum(amount_minor)::bigint AS amount FROM attribution_gaps
              WHERE status IN ('open', 'acknowledged') AND class <> 'orphan_evidence'
                AND amount_minor IS NOT NULL
              GROUP BY currency",
        )
        .fetch_all(pool)
        .await?;
        let sums: Vec<(String, i64)> = money
            .iter()
            .map(|row| {
                (
                    row.get::<String, _>("currency"),
                    row.get::<i64, _>("amount"),
                )
            })
            .collect();
        let mut seen = self.currencies.lock().expect("lock poisoned");
        let mut now_seen = BTreeSet::new();
        for (currency, amount) in currency_labels(&sums) {
            metrics::gauge!("attribution_money_at_risk", "currency" => currency.clone())
                .set(decimal_units(amount));
            now_seen.insert(currency);
        }
        for gone in seen.difference(&now_seen) {
            metrics::gauge!("attribution_money_at_risk", "currency" => gone.clone()).set(0.0);
        }
        seen.extend(now_seen);
        drop(seen);
        let close = calendar.close_of(calendar.month_of(now));
        metrics::gauge!("attribution_seconds_to_close").set((close - now).num_seconds() as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_becomes_decimal_units() {
        assert_eq!(decimal_units(1_999), 19.99);
        assert_eq!(decimal_units(-5), -0.05);
        assert_eq!(decimal_units(0), 0.0);
    }

    #[test]
    fn currency_labels_are_bounded() {
        let sums = vec![
            ("CAD".to_string(), 100),
            ("USD ".to_string(), 5),
            ("cad".to_string(), 7),
            ("€€".to_string(), 1),
        ];
        let labels = currency_labels(&sums);
        assert_eq!(
            labels,
            BTreeMap::from([
                ("CAD".to_string(), 100),
                ("USD".to_string(), 5),
                ("other".to_string(), 8)
            ])
        );
        // A thousand distinct codes: still at most MAX_CURRENCIES + 1 labels, and no
        // money lost.
        let many: Vec<(String, i64)> = (0..1000_u32)
            .map(|i| {
                let code: String = [i / 676, (i / 26) % 26, i % 26]
                    .iter()
                    .map(|d| char::from(b'A' + *d as u8))
                    .collect();
                (code, 1)
            })
            .collect();
        let labels = currency_labels(&many);
        assert_eq!(labels.len(), MAX_CURRENCIES + 1);
        assert_eq!(labels["other"], 1000 - MAX_CURRENCIES as i64);
        assert_eq!(labels.values().sum::<i64>(), 1000);
        assert!(!currency_labels(&[("CAD".into(), 1)]).contains_key("other"));
    }
}
