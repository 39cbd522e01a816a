//! The same month report through `recon-api`: `GET /v1/attribution/report?month=`
//! with an admin key, JSON and CSV, on the database the report benchmark loaded.

use std::time::{Duration, Instant};

use recon_attribution::Month;
use recon_store::MasterKey;
use secrecy::ExposeSecret;

use crate::report::{Loaded, print_line};
use crate::support;

const RUNS: usize = 15;

pub async fn run(loaded: &Loaded) -> anyhow::Result<()> {
    let env = vec![
        ("DATABASE_URL", loaded.db.url.clone()),
        (
            "RECON_MASTER_KEY",
            MasterKey::generate().expose_secret().to_string(),
        ),
        ("RUST_LOG", "warn".to_string()),
    ];
    let key = support::run_ok("reconctl", &["api-keys", "create", "--role", "admin"], &env)?
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let addr = format!("127.0.0.1:{}", support::free_port()?);
    let mut api_env = env.clone();
    api_env.push(("API_ADDR", addr.clone()));
    let _api = support::Processes(vec![support::spawn("recon-api", &[], &api_env)?]);
    support::wait_ready(&format!("http://{addr}/readyz")).await?;
    let http = reqwest::Client::new();
    for (accept, what) in [
        (
            "application/json",
            "GET /v1/attribution/report (JSON), every account",
        ),
        (
            "text/csv",
            "GET /v1/attribution/report (CSV), every account",
        ),
    ] {
        let figures = time(&http, &addr, &key, loaded.month, accept).await?;
        print_line(what, &figures);
    }
    Ok(())
}

async fn time(
    http: &reqwest::Client,
    addr: &str,
    key: &str,
    month: Month,
    accept: &str,
) -> anyhow::Result<support::Outcome> {
    let url = format!("http://{addr}/v1/attribution/report?month={month}");
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let started = Instant::now();
        let response = http
            .get(&url)
            .bearer_auth(key)
            .header("accept", accept)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the report endpoint answered {}",
            response.status()
        );
        response.bytes().await?;
        // The first request warms the cache and the connection.
        if run > 0 {
            times.push(started.elapsed());
        }
    }
    Ok(support::timings(times))
}
