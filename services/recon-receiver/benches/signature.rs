//! `make bench`: what one webhook costs to verify with a normal `webhook-signature`
//! header (one entry) and with the largest one accepted (10 entries, the match last),
//! for a small body and for the largest body accepted. Prints medians and the ratio;
//! never fails on speed.

// A benchmark reports on standard output, and its statistics are floating point.
#![allow(clippy::print_stdout, clippy::float_arithmetic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use recon_receiver::intake::{SignedHeaders, classify};
use recon_receiver::signature::{MAX_SIGNATURES, VerifierKey, sign};

const CURRENT: &str = "YmVuY2htYXJrLXZlcmlmaWVyLXRva2VuLTAxMjM0NQ==";
const RETIRING: &str = "b2xkLWJlbmNobWFyay12ZXJpZmllci10b2tlbg==";
const NOW: i64 = 1_800_000_000;
const RUNS: usize = 2001;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("signature benchmark: skipped (run it with `make bench`)");
        return;
    }
    // Two active keys, as while a verifier token rotates.
    let keys = [
        VerifierKey::parse(RETIRING).unwrap(),
        VerifierKey::parse(CURRENT).unwrap(),
    ];
    println!("webhook verification, 2 active keys, median of {RUNS} runs");
    for (label, body) in [
        ("small body (80 B)", small_body()),
        ("largest body (256 KiB)", large_body()),
    ] {
        let signature = sign(CURRENT, "msg_bench", NOW, body.as_bytes()).unwrap();
        let decoy = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(MAX_SIGNATURES - 1);
        let maximal = format!("{decoy}{signature}");
        let normal = median(&keys, &body, &signature);
        let worst = median(&keys, &body, &maximal);
        println!(
            "{label:<24} 1 entry: {:>9.1} µs   {MAX_SIGNATURES} entries: {:>9.1} µs   ratio {:.2}",
            micros(normal),
            micros(worst),
            worst.as_secs_f64() / normal.as_secs_f64()
        );
    }
}

fn median(keys: &[VerifierKey], body: &str, header: &str) -> Duration {
    let ts = NOW.to_string();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let intake = classify(
                SignedHeaders {
                    webhook_id: Some("msg_bench"),
                    timestamp: Some(&ts),
                    signature: Some(header),
                },
                body.as_bytes(),
                keys,
                NOW,
            );
            assert!(
                black_box(intake).is_ok(),
                "the benchmark's webhook verifies"
            );
            started.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn small_body() -> String {
    r#"{"id":"25764674","type":"cardTransaction"}"#.to_string()
}

fn large_body() -> String {
    let padding = "x".repeat(256 * 1024 - 64);
    format!(r#"{{"id":"25764674","type":"cardTransaction","note":"{padding}"}}"#)
}
