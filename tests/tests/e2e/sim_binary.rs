use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use helcim_client::{AccountLimits, ApiToken, ClientConfig, HelcimClient, TransactionQuery};
use serde_json::Value;

use crate::binaries::{Running, free_port, wait_until_healthy};
use crate::webhook_sink::Sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_binary_serves_the_api_and_delivers_every_signed_webhook_despite_faults() {
    let sink = Arc::new(Sink::default());
    *sink.fail_first_attempt_of.lock().unwrap() = vec!['a', 'b', 'c'];
    let url_template = sink.start();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let faults = r#"{"webhooks":{"duplicateRate":0.1,"dropRate":0.05,"reorderWindow":8}}"#;
    let mut sim = Running::start(
        "recon-sim",
        &[
            "--addr",
            &addr,
            "--seed",
            "7",
            "--accounts",
            "2",
            "--transactions-per-account",
            "150",
            "--webhook-url",
            &url_template,
            "--webhook-rate",
            "0",
            "--webhook-retry-base-ms",
            "50",
            "--hold-deliveries",
            "--exit-when-delivered",
        ],
        &[("SIM_FAULTS", faults.to_string())],
    );
    let base = format!("http://{addr}");
    wait_until_healthy(&format!("{base}/healthz")).await;
    let http = reqwest::Client::new();
    let accounts: Vec<Value> = http
        .get(format!("{base}/sim/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.len(), 2);
    for account in &accounts {
        let tokens = account["verifierTokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        sink.tokens
            .lock()
            .unwrap()
            .insert(account["accountId"].as_str().unwrap().to_string(), tokens);
    }

    // The API answers the typed client with the account's token.
    let token = ApiToken::new(accounts[0]["apiToken"].as_str().unwrap()).unwrap();
    let config = ClientConfig::new(&format!("{base}/v2"), token)
        .unwrap()
        .with_limits(AccountLimits::HELCIM);
    let client = HelcimClient::new(config).unwrap();
    client.connection_test().await.unwrap();
    let listed = client
        .card_transactions(&TransactionQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 150);

    let started = http
        .post(format!("{base}/sim/deliveries/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let status = tokio::task::spawn_blocking(move || {
        let status = sim.wait(Duration::from_secs(60));
        (status, sim)
    });
    let (status, _sim) = status.await.unwrap();
    assert!(status.expect("--exit-when-delivered exits").success());

    let received = sink.received();
    // One unsigned, event-less probe per account first.
    let probes: Vec<_> = received.iter().filter(|r| r.webhook_id.is_none()).collect();
    assert_eq!(probes.len(), 2);
    assert!(probes.iter().all(|p| p.signatures == 0 && p.body == "{}"));

    let events: Vec<_> = received.iter().filter(|r| r.webhook_id.is_some()).collect();
    assert!(
        events.iter().all(|r| r.signature_valid),
        "every event is validly signed"
    );
    assert!(
        events.iter().any(|r| r.signatures == 2),
        "the account mid-rotation signs twice"
    );
    assert!(
        events.iter().any(|r| r.answered == 503),
        "some first attempts failed"
    );

    // Every failed first attempt was retried until accepted.
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        if event.answered == 204 {
            *accepted
                .entry(event.webhook_id.as_deref().unwrap())
                .or_default() += 1;
        }
    }
    for event in events.iter().filter(|e| e.answered == 503) {
        assert!(accepted.contains_key(event.webhook_id.as_deref().unwrap()));
    }
    assert!(
        accepted.values().any(|&n| n >= 2),
        "duplicates arrive under the same id"
    );

    // The plan is deterministic: recompute it here and hold the binary to it. Every
    // planned delivery was accepted exactly as often as planned; dropped events never
    // arrived.
    let activity = recon_sim::generate(&recon_sim::GenerateConfig {
        seed: 7,
        transactions_per_account: 150,
        ..recon_sim::GenerateConfig::default()
    });
    let faults: recon_sim::faults::Faults = serde_json::from_str(faults).unwrap();
    let plan = recon_sim::webhooks::plan::plan(&activity, &faults.webhooks, 7);
    let mut planned: HashMap<&str, usize> = HashMap::new();
    for delivery in &plan.deliveries {
        *planned.entry(delivery.webhook_id.as_str()).or_default() += 1;
    }
    assert_eq!(accepted, planned);
    assert!(!plan.dropped.is_empty());
    for dropped in &plan.dropped {
        assert!(
            !events
                .iter()
                .any(|e| e.webhook_id.as_deref() == Some(dropped.webhook_id.as_str()))
        );
    }
    let bodies: HashSet<&str> = events.iter().map(|e| e.body.as_str()).collect();
    assert!(bodies.iter().any(|b| b.contains("terminalCancel")));
    assert!(bodies.iter().any(|b| b.contains("cardTransaction")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_stops_cleanly_on_sigterm() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut sim = Running::start("recon-sim", &["--addr", &addr], &[]);
    wait_until_healthy(&format!("http://{addr}/healthz")).await;
    let status = sim.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fault_json_stops_the_simulator_with_a_clear_error() {
    let addr = format!("127.0.0.1:{}", free_port());
    let output = std::process::Command::new(crate::binaries::binary("recon-sim"))
        .args(["--addr", &addr])
        .env("SIM_FAULTS", "{not json")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SIM_FAULTS is not valid faults JSON"),
        "{stderr}"
    );
}
