//! Escalations as a month's close nears (docs/alerts.md): for every account with
//! unresolved (open or acknowledged) gaps in a month not yet closed, each threshold
//! crossed is recorded once in `attribution_escalations` (its primary key makes it
//! once across replicas), and among the thresholds newly crossed only the nearest to
//! the close is alerted ([`recon_attribution::escalation::plan`]).
//!
//! Which replica alerts is decided by the database: the alert is written by whoever
//! inserted the escalation row of the alerted threshold, in the same transaction; a
//! replica whose insert found the row already there writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use recon_attribution::escalation;
use recon_attribution::month::Thresholds;
use recon_attribution::report::share_of;
use recon_attribution::{CloseCalendar, Month};
use recon_money::format_minor_units;
use recon_queue::envelope::alert::{Detail, EscalationDetail, MoneyAtRisk};
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::publish::insert_alert;

/// Runs one sweep at `now`; returns the number of alerts written.
pub async fn sweep(
    pool: &PgPool,
    calendar: CloseCalendar,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    // Accounts with live gaps in months whose close is still ahead.
    let rows = sqlx::query(
        "SELECT DISTINCT account_id, month FROM attribution_gaps
          WHERE status IN ('open', 'acknowledged') AND account_id IS NOT NULL
            AND deadline > $1",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut alerts = 0;
    for row in rows {
        let account: String = row.get("account_id");
        let month = Month::of_date(row.get("month"));
        let deadline = calendar.close_of(month);
        if escalation::crossed(thresholds, deadline, now).is_empty() {
            continue;
        }
        if escalate_one(pool, thresholds, &account, month, deadline, now).await? {
            alerts += 1;
        }
    }
    Ok(alerts)
}

/// One account and month, in one transaction. True when it wrote an alert.
async fn escalate_one(
    pool: &PgPool,
    thresholds: &Thresholds,
    account: &str,
    month: Month,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let recorded: Vec<Duration> = sqlx::query_scalar::<_, i32>(
        "SELECT threshold_secs FROM attribution_escalations WHERE account_id = $1 AND month = $2",
    )
    .bind(account)
    .bind(month.first_day())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|secs| Duration::from_secs(secs.max(0) as u64))
    .collect();
    let plan = escalation::plan(thresholds, deadline, now, &recorded);
    if plan.record.is_empty() {
        return Ok(false);
    }
    let detail = detail(&mut tx, account, month).await?;
    let mut alerted = false;
    for threshold in &plan.record {
        let secs = i32::try_from(threshold.as_secs()).unwrap_or(i32::MAX);
        let won = sqlx::query(
            "INSERT INTO attribution_escalations
                 (account_id, month, threshold_secs, fired_at, open_gaps)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(account)
        .bind(month.first_day())
        .bind(secs)
        .bind(now)
        .bind(detail.open_gaps as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won || plan.alert != Some(*threshold) {
            continue;
        }
        let mut detail = detail.clone();
        detail.seconds_before_close = i64::from(secs);
        let key = format!("escalation:{account}:{month}:{secs}");
        let id = insert_alert(
            &mut tx,
            &key,
            "escalation",
            Some(account),
            month,
            deadline,
            now,
            Detail::Escalation(detail),
        )
        .await?;
        if let Some(id) = id {
            sqlx::query(
                "UPDATE attribution_escalations SET alert_id = $4
                  WHERE account_id = $1 AND month = $2 AND threshold_secs = $3",
            )
            .bind(account)
            .bind(month.first_day())
            .bind(secs)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            alerted = true;
        }
    }
    tx.commit().await?;
    if alerted {
        tracing::info!(account, %month, "attribution escalation raised");
    }
    Ok(alerted)
}

/// The open gap count and the money at risk by currency (the share too when the
/// account has a rate). Orphan evidence counts as a gap but its money, not in the
/// ledger, is not in the sums: the same rule as the report's `atRiskVolume`.
async fn detail(
    tx: &mut Transaction<'_, Postgres>,
    account: &str,
    month: Month,
) -> Result<EscalationDetail, sqlx::Error> {
    let open_gaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_gaps
          WHERE account_id = $1 AND month = $2 AND status IN ('open', 'acknowledged')",
    )
    .bind(account)
    .bind(month.first_day())
    .fetch_one(&mut **tx)
    .await?;
    let sums: BTreeMap<String, i64> = sqlx::query(
        "SELECT currency, sum(amount_minor)::bigint AS amount FROM attribution_gaps
          WHERE account_id = $1 AND month = $2 AND status IN ('open', 'acknowledged')
            AND class <> 'orphan_evidence' AND amount_minor IS NOT NULL
          GROUP BY currency",
    )
    .bind(account)
    .bind(month.first_day())
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| {
        (
            row.get::<String, _>("currency").trim().to_string(),
            row.get("amount"),
        )
    })
    .collect();
    let rate: Option<i32> =
        sqlx::query_scalar("SELECT revenue_share_bps FROM accounts WHERE account_id = $1")
            .bind(account)
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    Ok(EscalationDetail {
        seconds_before_close: 0,
        open_gaps: u32::try_from(open_gaps).unwrap_or(u32::MAX),
        at_risk: at_risk(&sums, rate),
    })
}

/// Money at risk per currency (sorted), with the share when a rate is known.
pub fn at_risk(sums: &BTreeMap<String, i64>, rate_bps: Option<i32>) -> Vec<MoneyAtRisk> {
    sums.iter()
        .map(|(currency, minor)| MoneyAtRisk {
            currency: currency.clone(),
            amount: format_minor_units(*minor, 2),
            share: rate_bps
                .map(|bps| format_minor_units(share_of(*minor, bps), 2))
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_at_risk_shows_the_share_only_with_a_rate() {
        let sums = BTreeMap::from([("CAD".to_string(), 6_999), ("USD".to_string(), 100)]);
        let with = at_risk(&sums, Some(250));
        assert_eq!(
            (
                with[0].currency.as_str(),
                with[0].amount.as_str(),
                with[0].share.as_str()
            ),
            ("CAD", "69.99", "1.74")
        );
        assert_eq!(with[1].share, "0.02");
        assert!(at_risk(&sums, None).iter().all(|m| m.share.is_empty()));
    }
}
