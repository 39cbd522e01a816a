//! The month report over a million transactions: how long
//! `recon_store::attribution::report::live` (and the API's report endpoint, when asked
//! to) takes, and whether Postgres reads the month through its index.

use std::time::{Duration, Instant};

use chrono::Utc;
use recon_attribution::report::Report;
use recon_attribution::{CloseCalendar, Month};
use recon_store::attribution::report::{Scope, live};
use recon_store::testing::TestDatabase;
use sqlx::{PgPool, Row};

use crate::month_load::{self, Mix};
use crate::support;

const RUNS: usize = 15;
const TARGET: Duration = Duration::from_secs(1);

/// The loaded database, for the report endpoint's timing afterwards.
#[derive(Debug)]
pub struct Loaded {
    pub db: TestDatabase,
    pub month: Month,
}

/// `ATTRIBUTION_BENCH_TRANSACTIONS` (default 1,000,000) ledger rows in the current
/// month, half as many in the month before, 200 accounts.
pub async fn run() -> anyhow::Result<Loaded> {
    let transactions: i64 = std::env::var("ATTRIBUTION_BENCH_TRANSACTIONS")
        .ok()
        .and_then(|n| n.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let mix = Mix {
        accounts: 200,
        transactions,
        earlier: transactions / 2,
        zone: "America/Edmonton".into(),
    };
    let calendar = CloseCalendar::default();
    let now = Utc::now();
    let month = calendar.month_of(now);
    let (start, close) = calendar.bounds(month);
    // A month only hours old would crowd its rows into those hours; any span serves.
    let end = (start + chrono::Duration::days(20)).min(close);
    let db = TestDatabase::create().await;
    let loading = Instant::now();
    let loaded = month_load::load(
        &db.url,
        &mix,
        calendar.start_of(month.previous()),
        start,
        end,
    )
    .await;
    if let Err(e) = loaded {
        db.drop_now().await;
        return Err(e);
    }
    println!(
        "month report: {} ledger rows in {month} and {} in {} over {} accounts (CAD/USD), loaded in {:.0} s",
        group(transactions),
        group(mix.earlier),
        month.previous(),
        mix.accounts,
        loading.elapsed().as_secs_f64()
    );
    match measure(&db, calendar, month).await {
        Ok(()) => Ok(Loaded { db, month }),
        Err(e) => {
            db.drop_now().await;
            Err(e)
        }
    }
}

async fn measure(db: &TestDatabase, calendar: CloseCalendar, month: Month) -> anyhow::Result<()> {
    let revenue: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_transactions WHERE month = $1 AND kind = 'revenue'",
    )
    .bind(month.first_day())
    .fetch_one(&db.pool)
    .await?;

    let all = time_live(&db.pool, calendar, month, &Scope::All).await?;
    let (figures, report) = &all;
    check(report, revenue)?;
    print_line(
        "every account, recon_store::attribution::report::live",
        figures,
    );
    let partner = Scope::Accounts((0..5).map(|a| format!("bench-{a:03}")).collect());
    let (partner_figures, _) = time_live(&db.pool, calendar, month, &partner).await?;
    print_line(
        "one partner's 5 accounts (the partner-key view)",
        &partner_figures,
    );
    explain(&db.pool, month, &Scope::All).await?;
    explain(&db.pool, month, &partner).await
}

async fn time_live(
    pool: &PgPool,
    calendar: CloseCalendar,
    month: Month,
    scope: &Scope,
) -> anyhow::Result<(support::Outcome, Report)> {
    // The first run warms the cache; a partner asks a warm database too.
    let mut report = live(pool, calendar, month, scope, Utc::now()).await?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        report = live(pool, calendar, month, scope, Utc::now()).await?;
        times.push(started.elapsed());
    }
    Ok((support::timings(times), report))
}

/// The report covered every revenue row of the month, and its numbers add up.
fn check(report: &Report, revenue: i64) -> anyhow::Result<()> {
    let counted: i64 = report.accounts.iter().map(|l| l.transactions).sum();
    anyhow::ensure!(
        counted == revenue,
        "the report counts {counted} revenue transactions, the month has {revenue}"
    );
    for line in &report.accounts {
        let parts = line.attributed_transactions
            + line.at_risk_transactions
            + line.pending_transactions
            + line.waived_transactions;
        anyhow::ensure!(
            parts == line.transactions,
            "{} {}: {parts} ≠ {}",
            line.account_id,
            line.currency,
            line.transactions
        );
    }
    Ok(())
}

pub fn print_line(what: &str, figures: &support::Outcome) {
    let p99 = figures.percentile(0.99);
    println!(
        "  {what} ({} runs): median {:.0} ms, p99 {:.0} ms (target < {} s: {})",
        figures.ok,
        support::ms(figures.percentile(0.5)),
        support::ms(p99),
        TARGET.as_secs(),
        if p99 < TARGET { "met" } else { "MISSED" }
    );
}

/// EXPLAIN ANALYZE of the report's main query (the same text as `live` sends). For
/// every account Postgres rightly reads the whole table when the month is most of it;
/// a partner's few accounts should come through the index.
async fn explain(pool: &PgPool, month: Month, scope: &Scope) -> anyhow::Result<()> {
    let accounts = match scope {
        Scope::All => None,
        Scope::Accounts(list) => Some(list.clone()),
    };
    let rows = sqlx::query(
        "EXPLAIN (ANALYZE, BUFFERS)
         SELECT account_id, currency, kind, verdict, gap_class,
                count(*) AS n, COALESCE(sum(amount_minor), 0)::bigint AS amount
           FROM attribution_transactions
          WHERE month = $1 AND ($2::text[] IS NULL OR account_id = ANY($2))
          GROUP BY account_id, currency, kind, verdict, gap_class",
    )
    .bind(month.first_day())
    .bind(&accounts)
    .fetch_all(pool)
    .await?;
    let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let indexed = plan
        .iter()
        .any(|line| line.contains("attribution_transactions_month"));
    println!(
        "  EXPLAIN ANALYZE, {}: month index (attribution_transactions_month) used: {}",
        match scope {
            Scope::All => "every account".to_string(),
            Scope::Accounts(list) => format!("{} accounts", list.len()),
        },
        if indexed { "yes" } else { "no" }
    );
    for line in &plan {
        println!("    {line}");
    }
    Ok(())
}

/// 1000000 → "1,000,000".
pub fn group(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
