//! `make bench`: what `recon-gateway` adds to a payment's latency, against the
//! simulator directly, in the same run, and how fast its evidence reaches Postgres.
//! Prints figures; fails only if the run itself breaks (never on speed).
//!
//! Every request is a Payment API purchase with its own idempotency key, so every
//! request through the gateway takes the full path: account lookup, partner token
//! added, forwarded, evidence spooled, written to Postgres in the background.
//! Two phases, (1) a fixed 200 requests/s (open loop: latency from the scheduled send,
//! so a late sender counts against the path) and (2) saturation (closed loop, 32
//! connections), each in short blocks alternating between the simulator directly and
//! through the gateway, after a warm-up that is not measured. "Added" is the gateway's
//! percentile minus the direct one over all blocks.
//!
//! The gateway runs at its deployed log level (`info`: one JSON line per payment, to a
//! file here); the simulator stands in for Helcim and logs warnings only. Everything
//! (this load generator, the simulator, the gateway, Postgres) shares the machine's
//! cores, so the figures include that contention, on both paths alike.

// A benchmark reports on standard output, and its statistics are floating point.
#![allow(clippy::print_stdout, clippy::float_arithmetic)]

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::Value;
use support::{Outcome, closed_loop, open_loop};

const FIXED_RATE: u32 = 200;
/// 20 blocks of 1 s per path: 4,000 requests each, so the p99 is the 40th slowest.
const FIXED_BLOCKS: usize = 20;
const FIXED_BLOCK: Duration = Duration::from_secs(1);
const SATURATION_CONNECTIONS: usize = 32;
const SATURATION_BLOCKS: usize = 5;
const SATURATION_BLOCK: Duration = Duration::from_secs(2);
const WARM_UP: Duration = Duration::from_secs(2);
const PARTNER_TOKEN: &str = "f29104118c0d65";

fn main() -> anyhow::Result<()> {
    support::run_bench("gateway", run)
}

/// What every phase shares.
struct Bench {
    client: reqwest::Client,
    token: String,
    /// Numbers every purchase (its invoice number and idempotency key).
    counter: Arc<AtomicU64>,
    direct: String,
    through: String,
    gateway_url: String,
}

#[derive(Clone, Copy)]
enum Load {
    /// Requests per second, each sent at its scheduled time whatever came before.
    Open(u32),
    /// Connections, each sending its next request when the last is answered.
    Closed(usize),
}

/// One phase's figures per path.
struct Alternated {
    direct: Outcome,
    through: Outcome,
    /// Evidence rows committed while the gateway's blocks ran.
    rows: i64,
    /// The most evidence records still spooled at the end of a gateway block.
    deepest_spool: f64,
}

impl Bench {
    /// Sends purchases to `url`, each numbered from the bench's own counter (so every
    /// idempotency key in the run is new, across blocks and paths).
    fn purchases(
        &self,
        url: &str,
    ) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
    + Clone
    + Send
    + 'static {
        let (client, token, url, counter) = (
            self.client.clone(),
            self.token.clone(),
            url.to_string(),
            Arc::clone(&self.counter),
        );
        move |_| {
            let (client, token, url) = (client.clone(), token.clone(), url.clone());
            let n = counter.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { purchase(&client, &token, &url, n).await })
        }
    }

    /// `blocks` blocks of `length` per path, alternating direct and through the gateway
    /// (ABBA: D G, G D, D G, ...), so a change in what else the shared cores run (other
    /// processes on the machine, Postgres's checkpoints) weighs on both paths alike;
    /// one long phase per path compared two different stretches of time.
    async fn alternate(
        &self,
        load: Load,
        blocks: usize,
        length: Duration,
        db: &TestDatabase,
    ) -> anyhow::Result<Alternated> {
        let mut result = Alternated {
            direct: Outcome::default(),
            through: Outcome::default(),
            rows: 0,
            deepest_spool: 0.0,
        };
        for block in 0..blocks {
            let order = if block % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for through in order {
                let url = if through { &self.through } else { &self.direct };
                let rows_before = if through { rows(db).await? } else { 0 };
                let outcome = match load {
                    Load::Open(rate) => open_loop(rate, length, self.purchases(url)).await,
                    Load::Closed(connections) => {
                        closed_loop(connections, length, self.purchases(url)).await
                    }
                };
                if through {
                    result.rows += rows(db).await? - rows_before;
                    let depth = metric(&self.gateway_url, "gateway_spool_depth").await;
                    result.deepest_spool = result.deepest_spool.max(depth);
                    result.through = result.through.merge(outcome);
                } else {
                    result.direct = result.direct.merge(outcome);
                }
            }
        }
        Ok(result)
    }
}

/// One read of the gateway's `/metrics`: every sample by its name and labels.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn read(base: &str) -> Scrape {
        let text = match reqwest::get(format!("{base}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        Scrape(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (key, value) = l.rsplit_once(' ')?;
                    Some((key.to_string(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// A histogram between `before` and this scrape, as "mean, p50 ≤, p99 ≤" (the
    /// percentiles to the exporter's bucket bounds).
    fn histogram(&self, before: &Scrape, name: &str) -> String {
        let delta = |key: &str| {
            self.0.get(key).copied().unwrap_or(0.0) - before.0.get(key).copied().unwrap_or(0.0)
        };
        let family = |suffix: &str| {
            self.0
                .keys()
                .find(|k| k.starts_with(&format!("{name}_{suffix}")))
                .cloned()
                .unwrap_or_default()
        };
        let (sum, count) = (delta(&family("sum")), delta(&family("count")));
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .keys()
            .filter(|k| k.starts_with(&format!("{name}_bucket")))
            .filter_map(|k| {
                let le = k.split("le=\"").nth(1)?.split('"').next()?;
                Some((le.parse::<f64>().ok()?, delta(k)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bound = |p: f64| {
            buckets
                .iter()
                .find(|(_, n)| *n >= count * p)
                .map_or(f64::INFINITY, |(le, _)| *le)
        };
        format!(
            "mean {:.3} ms, p50 ≤ {} ms, p99 ≤ {} ms",
            sum / count * 1000.0,
            bound(0.50) * 1000.0,
            bound(0.99) * 1000.0
        )
    }
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
            // As deployed: `info` (the default) logs one line per payment.
            ("RUST_LOG", "info".into()),
        ],
    )?;
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    wait_ready(&format!("{gateway_url}/readyz")).await?;
    println!(
        "gateway benchmark (Payment API purchases with fresh idempotency keys, simulator and Postgres on 127.0.0.1, {} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SATURATION_CONNECTIONS * 2)
        .build()?;
    let bench = Bench {
        client,
        token: token.clone(),
        counter: Arc::new(AtomicU64::new(0)),
        direct: format!("{sim_url}/v2/payment/purchase"),
        through: format!("{gateway_url}/v2/payment/purchase"),
        gateway_url: gateway_url.clone(),
    };
    // Warm up connections (and both processes' allocators and caches) on both paths;
    // none of it is measured.
    for url in [&bench.direct, &bench.through] {
        closed_loop(8, WARM_UP, bench.purchases(url)).await;
    }

    let before = Scrape::read(&gateway_url).await;
    let fixed = bench
        .alternate(Load::Open(FIXED_RATE), FIXED_BLOCKS, FIXED_BLOCK, &db)
        .await?;
    let after = Scrape::read(&gateway_url).await;
    println!(
        "at a fixed {FIXED_RATE} requests/s (open loop, latency from the scheduled send; {FIXED_BLOCKS} blocks of {} s per path, alternating):",
        FIXED_BLOCK.as_secs()
    );
    print(&fixed.direct, "simulator directly");
    print(&fixed.through, "through the gateway");
    added(&fixed.direct, &fixed.through);
    for (name, what) in [
        (
            "gateway_added_seconds",
            "the gateway's own work (its time but Helcim's)",
        ),
        (
            "gateway_spool_append_seconds",
            "  of which building and spooling the evidence",
        ),
        (
            "gateway_upstream_seconds",
            "Helcim (the simulator) as the gateway saw it",
        ),
    ] {
        println!("  {what}: {}", after.histogram(&before, name));
    }

    let saturation = bench
        .alternate(
            Load::Closed(SATURATION_CONNECTIONS),
            SATURATION_BLOCKS,
            SATURATION_BLOCK,
            &db,
        )
        .await?;
    println!(
        "\nat saturation ({SATURATION_CONNECTIONS} connections, closed loop; {SATURATION_BLOCKS} blocks of {} s per path, alternating):",
        SATURATION_BLOCK.as_secs()
    );
    print(&saturation.direct, "simulator directly");
    print(&saturation.through, "through the gateway");
    added(&saturation.direct, &saturation.through);
    println!(
        "  evidence rows committed to Postgres during the gateway's blocks: {:.0} rows/s ({} rows; at most {:.0} still spooled at a block's end)",
        saturation.rows as f64 / saturation.through.elapsed.as_secs_f64(),
        saturation.rows,
        saturation.deepest_spool
    );
    let drain_started = Instant::now();
    let expected = fixed.through.ok + saturation.through.ok;
    while metric(&gateway_url, "gateway_spool_depth").await > 0.0
        && drain_started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = rows(&db).await?;
    println!(
        "  spool drained {:.2} s after the last block; evidence rows in all: {total} (for at least {expected} answered purchases through the gateway)",
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
        // `name value`, or `name{labels} value` (the one label set the bench produces).
        .find(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{')))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn print(outcome: &Outcome, name: &str) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<20} {:>6.0} purchases/s ({} approved, {} failed); latency mean {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        outcome.rate(),
        outcome.ok,
        outcome.failed,
        ms(outcome.mean()),
        ms(outcome.percentile(0.50)),
        ms(outcome.percentile(0.99)),
        ms(outcome.percentile(1.0))
    );
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

fn spawn(name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Child> {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("recon-bench-{name}.log")))?;
    Ok(Command::new(support::binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

fn run_ok(name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<()> {
    let output = Command::new(support::binary(name)?)
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
