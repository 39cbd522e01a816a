//! `make bench`: the receiver's confirmed-webhook throughput and latency, on this
//! machine, with the load generated in the same run. Prints figures; fails only if the
//! run itself breaks (never on speed).
//!
//! Phases: (1) RabbitMQ alone, publishing with confirms through recon-queue (the
//! ceiling); (2) the receiver at saturation (closed loop, 64 connections); (3) the
//! receiver at a fixed 1,000 requests/s (open loop: latency from the scheduled send,
//! so a stall is not hidden). Afterwards the work queue must hold one message per 2xx.

// A benchmark reports on standard output, and its statistics are floating point.
#![allow(clippy::print_stdout, clippy::float_arithmetic)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Outcome, closed_loop, open_loop};

use futures::StreamExt;
use lapin::BasicProperties;
use rand::Rng;
use recon_queue::{Broker, BrokerConfig, Topology};
use recon_receiver::signature::sign;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const TOKEN: &str = "YmVuY2htYXJrLXZlcmlmaWVyLXRva2VuLTAxMjM0NQ==";
const ACCOUNT: &str = "bench";
const SATURATION_CONNECTIONS: usize = 64;
const PHASE: Duration = Duration::from_secs(15);
const FIXED_RATE: u32 = 1000;

fn main() -> anyhow::Result<()> {
    support::run_bench("receiver", run)
}

async fn run() -> anyhow::Result<()> {
    let prefix = format!("bench-{:012x}", rand::rng().random::<u64>() >> 16);
    println!(
        "receiver benchmark ({} s phases, RabbitMQ on 127.0.0.1, prefix {prefix})\n",
        PHASE.as_secs()
    );

    let ceiling = rabbitmq_ceiling(&format!("{prefix}-ceiling")).await?;
    println!(
        "RabbitMQ alone, persistent + confirms, 256 in flight over 4 channels: {ceiling:.0} msg/s"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut receiver = start_receiver(port, &prefix)?;
    let url = format!("http://127.0.0.1:{port}/webhooks/helcim/{ACCOUNT}");
    wait_ready(port).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SATURATION_CONNECTIONS * 2)
        .build()?;

    // Warm up connections and the broker channels.
    closed_loop(16, Duration::from_secs(2), webhooks(&client, &url, "warm")).await;

    let saturation = closed_loop(
        SATURATION_CONNECTIONS,
        PHASE,
        webhooks(&client, &url, "sat"),
    )
    .await;
    let rss_after_saturation = rss_kib(receiver.id());
    let fixed = open_loop(FIXED_RATE, PHASE, webhooks(&client, &url, "fixed")).await;
    let rss = rss_kib(receiver.id());
    let peak = peak_kib(receiver.id()).unwrap_or(0);

    let accepted = saturation.ok + fixed.ok;
    let broker = Broker::new(BrokerConfig::new(AMQP_URL, Topology::new(&prefix), "bench"));
    let connection = broker.connection().await.map_err(anyhow::Error::msg)?;
    let queued = broker.topology().depths(&connection).await?[0].1;
    broker.topology().delete(&connection).await?;
    broker.close().await;
    let _ = receiver.kill();
    let _ = receiver.wait();
    // The warm-up's confirmed messages are in the queue too.
    let warm = queued as usize - accepted.min(queued as usize);

    println!("\nat saturation ({SATURATION_CONNECTIONS} connections, closed loop):");
    print(&saturation);
    println!(
        "  ratio to RabbitMQ alone: {:.2}",
        saturation.rate() / ceiling
    );
    println!("  receiver RSS after: {} MiB", rss_after_saturation / 1024);
    println!("\nat a fixed {FIXED_RATE} requests/s (open loop, latency from the scheduled send):");
    print(&fixed);
    println!(
        "  receiver RSS after: {} MiB (peak over the run {} MiB)",
        rss / 1024,
        peak / 1024
    );
    println!(
        "\nwork queue: {queued} messages = {accepted} answered 2xx + {warm} from the warm-up{}",
        if saturation.failed + fixed.failed > 0 {
            " (some requests failed: see above)"
        } else {
            ""
        }
    );
    anyhow::ensure!(
        queued as usize >= accepted,
        "fewer messages queued than 2xx answers"
    );
    Ok(())
}

/// Publishes through recon-queue's confirmed pool as fast as confirms allow.
async fn rabbitmq_ceiling(prefix: &str) -> anyhow::Result<f64> {
    let broker = Arc::new(Broker::new(BrokerConfig::new(
        AMQP_URL,
        Topology::new(prefix),
        "bench-ceiling",
    )));
    broker.connect().await.map_err(anyhow::Error::msg)?;
    let body = vec![b'x'; 200];
    let messages = 30_000;
    let started = Instant::now();
    futures::stream::iter(0..messages)
        .map(|_| {
            let (broker, body) = (Arc::clone(&broker), body.clone());
            async move {
                broker
                    .publish("work", &body, BasicProperties::default())
                    .await
            }
        })
        .buffer_unordered(256)
        .for_each(|result| async move { result.expect("the ceiling run publishes") })
        .await;
    let rate = f64::from(messages) / started.elapsed().as_secs_f64();
    let connection = broker.connection().await.map_err(anyhow::Error::msg)?;
    broker.topology().delete(&connection).await?;
    broker.close().await;
    Ok(rate)
}

fn print(outcome: &Outcome) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  confirmed webhooks/s: {:.0} ({} answered 2xx, {} failed)",
        outcome.rate(),
        outcome.ok,
        outcome.failed
    );
    println!(
        "  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(outcome.percentile(0.50)),
        ms(outcome.percentile(0.90)),
        ms(outcome.percentile(0.99)),
        ms(outcome.percentile(1.0))
    );
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Sends signed webhooks, `msg_<phase>_<n>` for the `n`th.
fn webhooks(
    client: &reqwest::Client,
    url: &str,
    phase: &str,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Clone
+ Send
+ 'static {
    let (client, url, phase) = (client.clone(), url.to_string(), phase.to_string());
    move |n| {
        let (client, url, id) = (client.clone(), url.clone(), format!("msg_{phase}_{n}"));
        Box::pin(async move { send(&client, &url, &id).await })
    }
}

async fn send(client: &reqwest::Client, url: &str, id: &str) -> bool {
    let body = format!(
        r#"{{"id":"{}","type":"cardTransaction"}}"#,
        25_000_000 + id.len()
    );
    let timestamp = now_secs();
    let signature = sign(TOKEN, id, timestamp, body.as_bytes()).expect("the bench token is base64");
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    matches!(response, Ok(r) if r.status().is_success())
}

fn start_receiver(port: u16, prefix: &str) -> anyhow::Result<Child> {
    let log = std::fs::File::create(std::env::temp_dir().join("recon-bench-receiver.log"))?;
    Ok(Command::new(support::binary("recon-receiver")?)
        .env("RECEIVER_ADDR", format!("127.0.0.1:{port}"))
        .env("AMQP_URL", AMQP_URL)
        .env("AMQP_PREFIX", prefix)
        .env("HELCIM_ACCOUNT_ID", ACCOUNT)
        .env("HELCIM_WEBHOOK_VERIFIER_TOKEN", TOKEN)
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

async fn wait_ready(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the receiver did not become ready")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:").unwrap_or(0)
}

fn peak_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}
