//! What the load benchmarks share: running only under `cargo bench`, finding the
//! release binaries, and sending load closed loop (each sender sends again as soon as
//! it is answered) or open loop (at a fixed rate, latency from the scheduled send, so a
//! stall is not hidden), with the latency figures of what came back.

// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Runs `bench` on a 2-thread runtime when `cargo bench` (which passes `--bench`)
/// started it; any other runner (`cargo test --benches`) gets a no-op rather than
/// minutes of load on a shared machine.
pub fn run_bench<F>(name: &str, bench: impl FnOnce() -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("{name} benchmark: skipped (run it with `make bench`)");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

/// The release binary `name`, beside the benchmark's own executable.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
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

/// What a phase of load got back.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Of the successful requests, sorted.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }

    pub fn mean(&self) -> Duration {
        let total: Duration = self.latencies.iter().sum();
        total / self.latencies.len().max(1) as u32
    }

    /// Both outcomes as one (blocks of one path, or senders of one phase), sorted.
    pub fn merge(mut self, other: Outcome) -> Outcome {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self
    }

    fn count(&mut self, ok: bool, latency: Duration) {
        if ok {
            self.ok += 1;
            self.latencies.push(latency);
        } else {
            self.failed += 1;
        }
    }
}

/// `connections` senders for `length`, each calling `send(n)` (`n` distinct within the
/// call) as soon as its last call answered; `send` says whether it succeeded.
pub async fn closed_loop<S, Fut>(connections: usize, length: Duration, send: S) -> Outcome
where
    S: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + length;
    let counter = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (send, counter) = (send.clone(), Arc::clone(&counter));
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let ok = send(n).await;
                    outcome.count(ok, sent.elapsed());
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
    total
}

/// `rate` calls of `send(n)` per second for `length`, each at its scheduled time
/// whatever became of the others; latency counts from the scheduled time.
pub async fn open_loop<S, Fut>(rate: u32, length: Duration, send: S) -> Outcome
where
    S: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let started = Instant::now();
    let total_requests = u64::from(rate) * length.as_secs();
    let interval = Duration::from_secs(1) / rate;
    let tasks: Vec<_> = (0..total_requests)
        .map(|n| {
            let scheduled = started + interval * n as u32;
            let call = send(n);
            tokio::spawn(async move {
                tokio::time::sleep_until(scheduled.into()).await;
                let ok = call.await;
                (ok, scheduled.elapsed())
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        let (ok, latency) = task.await.expect("a request task finishes");
        outcome.count(ok, latency);
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies.sort();
    outcome
}

/// Child processes killed (and reaped) when dropped, so a failing benchmark leaves
/// nothing running.
#[derive(Debug, Default)]
pub struct Processes(pub Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the release binary `name`, its standard error in
/// `$TMPDIR/recon-bench-<name>.log` (where to look when a figure looks wrong).
pub fn spawn(
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<std::process::Child> {
    let log = std::fs::File::create(std::env::temp_dir().join(format!("recon-bench-{name}.log")))?;
    Ok(std::process::Command::new(binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?)
}

/// Runs the release binary `name` to completion; its standard output when it
/// succeeded, an error with its standard error when not.
pub fn run_ok(name: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `url` until it answers 2xx (20 s at most).
pub async fn wait_ready(url: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{url} did not become ready")
}

/// Sorted durations as an [`Outcome`], for figures timed one by one.
pub fn timings(mut latencies: Vec<Duration>) -> Outcome {
    latencies.sort();
    Outcome {
        ok: latencies.len(),
        elapsed: latencies.iter().sum(),
        latencies,
        ..Outcome::default()
    }
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
