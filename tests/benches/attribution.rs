//! `make bench`: attribution gaps, release build, on this machine. Prints figures;
//! never fails on speed (it fails when a report does not add up).
//!
//! 1. The month report over 1,000,000 transactions generated straight into Postgres
//!    (target < 1 s), from the store and through `recon-api`, and whether the month
//!    index is used.
//! 2. Detection latency, ledger row to visible gap, at a steady rate with a real
//!    `recon-worker` running the engine.

#![allow(clippy::print_stdout, clippy::float_arithmetic)]

mod support;

#[path = "attribution/detection.rs"]
mod detection;
#[path = "attribution/endpoint.rs"]
mod endpoint;
#[path = "attribution/month_load.rs"]
mod month_load;
#[path = "attribution/report.rs"]
mod report;

fn main() -> anyhow::Result<()> {
    support::run_bench("attribution", || async {
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        println!("attribution benchmark ({build} build, Postgres local)\n");
        // `ATTRIBUTION_BENCH=report` or `=detection` runs one part only.
        let only = std::env::var("ATTRIBUTION_BENCH").unwrap_or_default();
        if only != "detection" {
            let loaded = report::run().await?;
            let through_api = endpoint::run(&loaded).await;
            loaded.db.drop_now().await;
            through_api?;
            println!();
        }
        if only != "report" {
            detection::print(&detection::run(50, 20).await?);
        }
        anyhow::Ok(())
    })
}
