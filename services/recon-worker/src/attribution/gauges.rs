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

use std::collections::BTreeSet;
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
        let mut seen = self.currencies.lock().expect("lock poisoned");
        let mut now_seen = BTreeSet::new();
        for row in &money {
            let currency = row.get::<String, _>("currency").trim().to_string();
            let amount: i64 = row.get("amount");
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
}
