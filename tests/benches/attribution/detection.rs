//! Detection latency: a real `recon-worker` with its attribution engine, evidence that
//! Helcim rejected the partner token already on file, then ledger rows written by SQL at
//! a steady rate, as the worker would store them. Latency runs from a row's commit to
//! the moment its `token_rejected` gap is visible in `attribution_gaps` (polled every
//! 20 ms, so the figures include up to 20 ms of polling).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::support;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const ACCOUNT: &str = "bench-latency";
const FIRST_ID: i64 = 40_000_000;

pub struct Figures {
    pub rate: u32,
    pub seconds: u64,
    pub seen: usize,
    pub missed: usize,
    pub latencies: support::Outcome,
}

pub async fn run(rate: u32, seconds: u64) -> anyhow::Result<Figures> {
    let db = TestDatabase::create().await;
    let prefix = format!("bench-attr-{:012x}", rand::rng().random::<u64>() >> 16);
    let result = measure(&db, &prefix, rate, seconds).await;
    if let Ok(connection) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    {
        let _ = recon_queue::Topology::new(&prefix)
            .delete(&connection)
            .await;
    }
    db.drop_now().await;
    result
}

async fn measure(
    db: &TestDatabase,
    prefix: &str,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let total = i64::from(rate) * seconds as i64;
    sqlx::query("INSERT INTO accounts (account_id) VALUES ($1)")
        .bind(ACCOUNT)
        .execute(&db.pool)
        .await?;
    let worker_addr = format!("127.0.0.1:{}", support::free_port()?);
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "RECON_MASTER_KEY",
            MasterKey::generate().expose_secret().to_string(),
        ),
        ("AMQP_URL", AMQP_URL.to_string()),
        ("AMQP_PREFIX", prefix.to_string()),
        ("HELCIM_API_BASE_URL", "http://127.0.0.1:9/v2".to_string()),
        ("WORKER_ADDR", worker_addr.clone()),
        ("RECON_ATTRIBUTION", "true".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ];
    let _worker = support::Processes(vec![support::spawn("recon-worker", &[], &env)?]);
    support::wait_ready(&format!("http://{worker_addr}/readyz")).await?;

    // Evidence first (as when the gateway records Helcim's answer before the webhook
    // brings the transaction), and let the engine see it before the clock starts.
    sqlx::query(
        "INSERT INTO attribution_evidence
             (dedupe_key, source, account_id, endpoint, idempotency_key, partner_token_sent,
              partner_token_added, is_valid_partner_token, outcome, response_status,
              transaction_id, invoice_number, amount_minor, currency, observed_at)
         SELECT 'bench-latency-' || i, 'gateway', $1, 'payment/purchase', NULL, false,
                true, 0, 'answered', 200, $2 + i, 'LAT-' || i, 1000 + i, 'CAD', now()
           FROM generate_series(0, $3 - 1) i",
    )
    .bind(ACCOUNT)
    .bind(FIRST_ID)
    .bind(total)
    .execute(&db.pool)
    .await?;
    let settled = Instant::now();
    loop {
        let matched: i64 = sqlx::query_scalar("SELECT count(*) FROM attribution_matches")
            .fetch_one(&db.pool)
            .await?;
        if matched >= total {
            break;
        }
        anyhow::ensure!(
            settled.elapsed() < Duration::from_secs(120),
            "the engine matched {matched} of {total} pieces of evidence in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let stored: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn(poll(db.pool.clone(), Arc::clone(&seen), Arc::clone(&done)));
    let pool = db.pool.clone();
    let record = Arc::clone(&stored);
    let load = support::open_loop(rate, Duration::from_secs(seconds), move |n| {
        let (pool, record) = (pool.clone(), Arc::clone(&record));
        async move {
            let id = FIRST_ID + n as i64;
            let ok = store(&pool, id, n as i64).await.is_ok();
            record.lock().unwrap().insert(id, Instant::now());
            ok
        }
    })
    .await;
    anyhow::ensure!(
        load.failed == 0,
        "{} ledger rows failed to insert",
        load.failed
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.await??;
    let (stored, seen) = (stored.lock().unwrap(), seen.lock().unwrap());
    let latencies: Vec<Duration> = stored
        .iter()
        .filter_map(|(id, at)| Some(seen.get(id)?.saturating_duration_since(*at)))
        .collect();
    Ok(Figures {
        rate,
        seconds,
        seen: latencies.len(),
        missed: stored.len() - latencies.len(),
        latencies: support::timings(latencies),
    })
}

/// One approved purchase, stored as the worker stores a fetched transaction.
async fn store(pool: &PgPool, id: i64, n: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO card_transactions
             (account_id, transaction_id, created_at, status, type, amount_minor, currency,
              invoice_number, raw, fetched_at, reconciliation_status)
         VALUES ($1, $2, now(), 'APPROVED', 'purchase', $3, 'CAD', $4, '{}', now(), 'matched')",
    )
    .bind(ACCOUNT)
    .bind(id)
    .bind(1000 + n)
    .bind(format!("LAT-{n}"))
    .execute(pool)
    .await?;
    Ok(())
}

/// Notes when each gap first shows, by transaction id.
async fn poll(
    pool: PgPool,
    seen: Arc<Mutex<HashMap<i64, Instant>>>,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let mut last = 0_i64;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, transaction_id FROM attribution_gaps
              WHERE id > $1 AND class = 'token_rejected' ORDER BY id",
        )
        .bind(last)
        .fetch_all(&pool)
        .await?;
        let now = Instant::now();
        {
            let mut seen = seen.lock().unwrap();
            for (id, tx) in rows {
                last = last.max(id);
                seen.entry(tx).or_insert(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub fn print(figures: &Figures) {
    println!(
        "detection latency, ledger row committed → token_rejected gap visible, {} rows/s for {} s:",
        figures.rate, figures.seconds
    );
    println!(
        "  p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} gaps seen, {} not within 90 s; target ≤ 60 s)",
        support::ms(figures.latencies.percentile(0.5)),
        support::ms(figures.latencies.percentile(0.99)),
        support::ms(
            figures
                .latencies
                .latencies
                .last()
                .copied()
                .unwrap_or_default()
        ),
        figures.seen,
        figures.missed
    );
}
