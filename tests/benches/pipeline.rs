//! `make bench`: the whole pipeline, release build, on this machine: simulator →
//! receiver → RabbitMQ → worker → Postgres. Prints figures; never fails on speed.
//!
//! 1. Helcim's limits lifted: transactions reconciled per second end to end, and the
//!    webhook-to-row latency (receiver accepted → ledger row written), p50/p99.
//! 2. Helcim's real limits (100 calls/min per account): API calls one reconciled
//!    transaction costs, counted by the simulator.

#![allow(clippy::print_stdout, clippy::float_arithmetic)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::Value;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn main() -> anyhow::Result<()> {
    support::run_bench("pipeline", || async {
        println!("pipeline benchmark (release binaries, RabbitMQ and Postgres local)\n");
        let lifted = run(Scenario {
            accounts: 2,
            per_account: 2500,
            real_limits: false,
            within: Duration::from_secs(180),
        })
        .await?;
        println!(
            "Helcim's limits lifted, {} transactions over {} accounts:",
            lifted.reconciled, 2
        );
        println!("  reconciled end to end: {:.0} transactions/s", lifted.rate);
        println!(
            "  webhook-to-row latency: p50 {:.0} ms, p99 {:.0} ms",
            lifted.p50_ms, lifted.p99_ms
        );
        println!(
            "  Helcim API calls per reconciled transaction: {:.2}",
            lifted.calls_per_tx
        );
        let real = run(Scenario {
            accounts: 1,
            per_account: 120,
            real_limits: true,
            within: Duration::from_secs(240),
        })
        .await?;
        println!(
            "\nHelcim's real limits (5 in flight, 100/min per account), {} transactions:",
            real.reconciled
        );
        println!(
            "  API calls per reconciled transaction: {:.2} (429s: {})",
            real.calls_per_tx, real.rate_limited
        );
        println!(
            "  reconciled: {:.1} transactions/min (the budget allows 100 calls/min)",
            real.rate * 60.0
        );
        anyhow::Ok(())
    })
}

struct Scenario {
    accounts: u32,
    per_account: u32,
    real_limits: bool,
    within: Duration,
}

struct Figures {
    reconciled: i64,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    calls_per_tx: f64,
    rate_limited: i64,
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Child> {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("recon-bench-{name}.log")))?;
    Ok(Command::new(support::binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

fn reconctl(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<()> {
    let status = Command::new(support::binary("reconctl")?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "reconctl {args:?} failed");
    Ok(())
}

async fn healthy(url: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{url} did not become healthy")
}

async fn run(scenario: Scenario) -> anyhow::Result<Figures> {
    let db = TestDatabase::create().await;
    let prefix = format!("bench-{:012x}", rand::rng().random::<u64>() >> 16);
    let (sim_addr, receiver_addr, worker_addr) = (
        format!("127.0.0.1:{}", port()),
        format!("127.0.0.1:{}", port()),
        format!("127.0.0.1:{}", port()),
    );
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "RECON_MASTER_KEY",
            MasterKey::generate().expose_secret().to_string(),
        ),
        ("AMQP_URL", AMQP_URL.to_string()),
        ("AMQP_PREFIX", prefix.clone()),
        ("HELCIM_API_BASE_URL", format!("http://{sim_addr}/v2")),
        (
            "HELCIM_LIMITS",
            if scenario.real_limits {
                "helcim"
            } else {
                "unlimited"
            }
            .to_string(),
        ),
        ("LOG_FORMAT", "json".to_string()),
    ];
    let (accounts, per_account) = (
        scenario.accounts.to_string(),
        scenario.per_account.to_string(),
    );
    let webhook_url = format!("http://{receiver_addr}/webhooks/helcim/{{account_id}}");
    let mut sim_args = vec![
        "--addr",
        &sim_addr,
        "--accounts",
        &accounts,
        "--transactions-per-account",
        &per_account,
        "--webhook-url",
        &webhook_url,
        "--webhook-rate",
        "0",
        "--webhook-concurrency",
        "64",
        "--no-probe",
        "--hold-deliveries",
    ];
    if !scenario.real_limits {
        sim_args.extend([
            "--limit-in-flight",
            "0",
            "--limit-per-minute",
            "0",
            "--limit-per-hour",
            "0",
        ]);
    }
    let mut children = Kill(vec![spawn("recon-sim", &sim_args, &[])?]);
    healthy(&format!("http://{sim_addr}/healthz")).await?;
    let sim_accounts: Vec<Value> = reqwest::get(format!("http://{sim_addr}/sim/accounts"))
        .await?
        .json()
        .await?;
    reconctl(&["migrate"], &env)?;
    for account in &sim_accounts {
        let mut with = env.clone();
        with.push((
            "VERIFIER",
            account["verifierTokens"][0]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
        with.push((
            "API_TOKEN",
            account["apiToken"].as_str().unwrap_or_default().to_string(),
        ));
        let id = account["accountId"].as_str().unwrap_or_default();
        reconctl(
            &[
                "accounts",
                "add",
                id,
                "--verifier-token-env",
                "VERIFIER",
                "--api-token-env",
                "API_TOKEN",
            ],
            &with,
        )?;
    }
    let mut receiver_env = env.clone();
    receiver_env.push(("RECEIVER_ADDR", receiver_addr.clone()));
    children
        .0
        .push(spawn("recon-receiver", &[], &receiver_env)?);
    let mut worker_env = env.clone();
    worker_env.push(("WORKER_ADDR", worker_addr.clone()));
    worker_env.push(("WORKER_PREFETCH", "128".into()));
    children.0.push(spawn("recon-worker", &[], &worker_env)?);
    healthy(&format!("http://{receiver_addr}/readyz")).await?;
    healthy(&format!("http://{worker_addr}/readyz")).await?;

    let total = i64::from(scenario.accounts * scenario.per_account);
    let http = reqwest::Client::new();
    let started = Instant::now();
    http.post(format!("http://{sim_addr}/sim/deliveries/start"))
        .send()
        .await?;
    let mut reconciled = 0;
    while started.elapsed() < scenario.within {
        reconciled = sqlx::query_scalar(
            "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'",
        )
        .fetch_one(&db.pool)
        .await?;
        if reconciled >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let latencies: (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
         FROM (SELECT extract(epoch FROM (d.processed_at - d.received_at)) * 1000 AS ms
               FROM webhook_deliveries d
               WHERE d.event_type = 'cardTransaction' AND d.processed_at IS NOT NULL) l",
    )
    .fetch_one(&db.pool)
    .await?;
    let stats: Value = http
        .get(format!("http://{sim_addr}/sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    let calls = stats["api"]["requests"].as_f64().unwrap_or(0.0);
    let rate_limited = stats["api"]["byStatus"]["429"].as_i64().unwrap_or(0);
    drop(children);
    let connection =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await?;
    recon_queue::Topology::new(&prefix)
        .delete(&connection)
        .await?;
    db.drop_now().await;
    Ok(Figures {
        reconciled,
        rate: reconciled as f64 / elapsed.as_secs_f64(),
        p50_ms: latencies.0.unwrap_or(0.0),
        p99_ms: latencies.1.unwrap_or(0.0),
        calls_per_tx: calls / reconciled.max(1) as f64,
        rate_limited,
    })
}
