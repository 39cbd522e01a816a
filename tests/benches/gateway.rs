//! `make bench`: what `recon-gateway` adds to a payment's latency, against the
//! simulator directly, in the same run, and how fast its evidence reaches Postgres.
//! Prints figures; fails only if the run itself breaks (never on speed).
//!
//! Every request is a Payment API purchase with its own idempotency key, so every
//! request through the gateway takes the full path: account lookup, partner token
//! added, forwarded, evidence spooled, written to Postgres in the background.
//! Phases: the simulator directly, then through the gateway, each (1) at a fixed 200
//! requests/s (open loop: latency from the scheduled send) and (2) at saturation
//! (closed loop, 32 connections). "Added" is the gateway's percentile minus the
//! direct one.

// A benchmark reports on standard output, and its statistics are floating point.
#![allow(clippy::print_stdout, clippy::float_arithmetic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::Value;

const PHASE: Duration = Duration::from_secs(10);
const FIXED_RATE: u32 = 200;
const SATURATION_CONNECTIONS: usize = 32;
const PARTNER_TOKEN: &str = "f29104118c0d65";

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("gateway benchmark: skipped (run it with `make bench`)");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

struct Target {
    name: &'static str,
    url: String,
}

async fn run() -> anyhow::Result<()> {
    let db = TestDatabase::create().await;
    let master = MasterKey::generate().expose_secret().to_string();
    let sim_port = free_port()?;
    let gateway_port = free_port()?;
    let mut sim = spawn(
        "recon-sim",
        &[
            "--addr",
            &format!("127.0.0.1:{sim_port}"),
            "--transactions-per-account",
            "10",
            "--limit-in-flight",
            "0",
            "--limit-per-minute",
            "0",
            "--limit-per-hour",
            "0",
        ],
        &[("RUST_LOG", "warn".into())],
    )?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    wait_ready(&format!("{sim_url}/healthz")).await?;
    let accounts: Vec<Value> = reqwest::get(format!("{sim_url}/sim/accounts"))
        .await?
        .json()
        .await?;
    let token = accounts[0]["apiToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let operator = [
        ("DATABASE_URL", db.url.clone()),
        ("RECON_MASTER_KEY", master.clone()),
        ("API", token.clone()),
        ("PARTNER", PARTNER_TOKEN.to_string()),
    ];
    run_ok("reconctl", &["migrate"], &operator)?;
    run_ok(
        "reconctl",
        &[
            "accounts",
            "add",
            "bench",
            "--api-token-env",
            "API",
            "--partner-token-env",
            "PARTNER",
        ],
        &operator,
    )?;
    let spool =
        std::env::temp_dir().join(format!("recon-bench-gateway-spool-{}", std::process::id()));
    let mut gateway = spawn(
        "recon-gateway",
        &[],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("RECON_MASTER_KEY", master.clone()),
            ("GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("HELCIM_API_BASE_URL", format!("{sim_url}/v2")),
            ("GATEWAY_SPOOL_DIR", spool.display().to_string()),
            ("RUST_LOG", "warn".into()),
        ],
    )?;
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    wait_ready(&format!("{gateway_url}/readyz")).await?;
    println!(
        "gateway benchmark ({} s phases, Payment API purchases with fresh idempotency keys, simulator and Postgres on 127.0.0.1)\n",
        PHASE.as_secs()
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SATURATION_CONNECTIONS * 2)
        .build()?;
    let direct = Target {
        name: "simulator directly",
        url: format!("{sim_url}/v2/payment/purchase"),
    };
    let through = Target {
        name: "through the gateway",
        url: format!("{gateway_url}/v2/payment/purchase"),
    };
    let counter = Arc::new(AtomicU64::new(0));
    // Warm up connections on both paths.
    for target in [&direct, &through] {
        closed_loop(&client, &token, target, &counter, 8, Duration::from_secs(2)).await;
    }

    let d_fixed = open_loop(&client, &token, &direct, &counter, FIXED_RATE, PHASE).await;
    let (sum_before, count_before) = (
        metric(&gateway_url, "gateway_added_seconds_sum").await,
        metric(&gateway_url, "gateway_added_seconds_count").await,
    );
    let g_fixed = open_loop(&client, &token, &through, &counter, FIXED_RATE, PHASE).await;
    let in_process = (metric(&gateway_url, "gateway_added_seconds_sum").await - sum_before)
        / (metric(&gateway_url, "gateway_added_seconds_count").await - count_before);
    println!("at a fixed {FIXED_RATE} requests/s (open loop, latency from the scheduled send):");
    d_fixed.print(direct.name);
    g_fixed.print(through.name);
    added(&d_fixed, &g_fixed);
    println!(
        "  of which inside the gateway process (gateway_added_seconds, mean): {:.3} ms; the rest is the extra HTTP hop",
        in_process * 1000.0
    );

    let d_sat = closed_loop(
        &client,
        &token,
        &direct,
        &counter,
        SATURATION_CONNECTIONS,
        PHASE,
    )
    .await;
    let rows_before = rows(&db).await?;
    let g_sat = closed_loop(
        &client,
        &token,
        &through,
        &counter,
        SATURATION_CONNECTIONS,
        PHASE,
    )
    .await;
    let rows_after = rows(&db).await?;
    let backlog_at_end = metric(&gateway_url, "gateway_spool_depth").await;
    println!("\nat saturation ({SATURATION_CONNECTIONS} connections, closed loop):");
    d_sat.print(direct.name);
    g_sat.print(through.name);
    added(&d_sat, &g_sat);
    println!(
        "  evidence rows committed to Postgres during the gateway phase: {:.0} rows/s ({} rows; {backlog_at_end:.0} still spooled at its end)",
        (rows_after - rows_before) as f64 / g_sat.elapsed.as_secs_f64(),
        rows_after - rows_before
    );
    let drain_started = Instant::now();
    let expected = g_fixed.ok + g_sat.ok;
    while metric(&gateway_url, "gateway_spool_depth").await > 0.0
        && drain_started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = rows(&db).await?;
    println!(
        "  spool drained {:.2} s after the phase; evidence rows in all: {total} (for at least {expected} answered purchases through the gateway)",
        drain_started.elapsed().as_secs_f64()
    );

    let _ = gateway.kill();
    let _ = gateway.wait();
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&spool);
    db.drop_now().await;
    anyhow::ensure!(
        total >= expected as i64,
        "fewer evidence rows than answered purchases through the gateway"
    );
    Ok(())
}

fn added(direct: &Outcome, through: &Outcome) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  added by the gateway: p50 {:+.2} ms, p99 {:+.2} ms",
        ms(through.percentile(0.50)) - ms(direct.percentile(0.50)),
        ms(through.percentile(0.99)) - ms(direct.percentile(0.99)),
    );
}

async fn rows(db: &TestDatabase) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM attribution_evidence")
            .fetch_one(&db.pool)
            .await?,
    )
}

async fn metric(base: &str, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{base}/metrics")).await else {
        return -1.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[derive(Default)]
struct Outcome {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self, name: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "  {name:<20} {:>6.0} purchases/s ({} approved, {} failed); latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.ok,
            self.failed,
            ms(self.percentile(0.50)),
            ms(self.percentile(0.99)),
            ms(self.percentile(1.0))
        );
    }

    fn merge(mut self, other: Outcome) -> Outcome {
        self.ok += other.ok;
        self.failed += other.failed;
        self.latencies.extend(other.latencies);
        self
    }
}

async fn purchase(client: &reqwest::Client, token: &str, url: &str, n: u64) -> bool {
    let amount = format!("{}.{:02}", 1 + n % 90, 10 + n % 80);
    let body = format!(
        r#"{{"ipAddress":"192.168.1.1","currency":"CAD","amount":"{amount}","invoiceNumber":"B-{n}","cardData":{{"cardNumber":"4124939999999990","cardExpiry":"0130","cardCVV":"100"}}}}"#
    );
    let response = client
        .post(url)
        .header("api-token", token)
        .header(
            "idempotency-key",
            format!("bench-{n:012}-{:016x}", std::process::id()),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

async fn closed_loop(
    client: &reqwest::Client,
    token: &str,
    target: &Target,
    counter: &Arc<AtomicU64>,
    connections: usize,
    length: Duration,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, token, url, counter) = (
                client.clone(),
                token.to_string(),
                target.url.clone(),
                Arc::clone(counter),
            );
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    if purchase(&client, &token, &url, n).await {
                        outcome.ok += 1;
                        outcome.latencies.push(sent.elapsed());
                    } else {
                        outcome.failed += 1;
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        total = total.merge(task.await.expect("a sender task finishes"));
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    total
}

async fn open_loop(
    client: &reqwest::Client,
    token: &str,
    target: &Target,
    counter: &Arc<AtomicU64>,
    rate: u32,
    length: Duration,
) -> Outcome {
    let started = Instant::now();
    let total_requests = (u64::from(rate) * length.as_secs()) as usize;
    let interval = Duration::from_secs(1) / rate;
    let tasks: Vec<_> = (0..total_requests)
        .map(|i| {
            let (client, token, url) = (client.clone(), token.to_string(), target.url.clone());
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let scheduled = started + interval * i as u32;
            tokio::spawn(async move {
                tokio::time::sleep_until(scheduled.into()).await;
                let ok = purchase(&client, &token, &url, n).await;
                (ok, scheduled.elapsed())
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        let (ok, latency) = task.await.expect("a request task finishes");
        if ok {
            outcome.ok += 1;
            outcome.latencies.push(latency);
        } else {
            outcome.failed += 1;
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort();
    outcome
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir: PathBuf = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let binary = dir.join(name);
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: `make bench` builds it first",
        binary.display()
    );
    Ok(binary)
}

fn spawn(name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Child> {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("recon-bench-{name}.log")))?;
    Ok(Command::new(binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

fn run_ok(name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<()> {
    let output = Command::new(binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(url: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{url} did not become ready")
}
