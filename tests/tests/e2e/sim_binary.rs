use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use helcim_client::{AccountLimits, ApiToken, ClientConfig, HelcimClient, TransactionQuery};

use crate::binaries::free_port;
use crate::sim::{json, listening_device, sim_accounts, start_sim};
use crate::webhook_sink::Sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_binary_serves_the_api_and_delivers_every_signed_webhook_despite_faults() {
    let sink = Arc::new(Sink::default());
    *sink.fail_first_attempt_of.lock().unwrap() = vec!['a', 'b', 'c'];
    let url_template = sink.start();
    let faults = r#"{"webhooks":{"duplicateRate":0.1,"dropRate":0.05,"reorderWindow":8}}"#;
    let sim = start_sim(
        &[
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
    )
    .await;
    let (base, mut sim) = (sim.url, sim.running);
    let http = reqwest::Client::new();
    let accounts = sim_accounts(&http, &base).await;
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
    let mut sim = start_sim(&[], &[]).await.running;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_binary_takes_its_payment_settings_from_flags_and_environment() {
    let sim = start_sim(
        &[
            "--partner-token-absent",
            "zero",
            "--idempotency-ttl-secs",
            "1",
            "--terminal-delay-ms",
            "0",
        ],
        &[("SIM_PARTNER_TOKENS", "partner-one, partner-two".to_string())],
    )
    .await;
    let base = &sim.url;
    let http = reqwest::Client::new();
    let accounts = sim_accounts(&http, base).await;
    let token = accounts[0]["apiToken"].as_str().unwrap();
    let body = serde_json::json!({
        "ipAddress": "10.0.0.1", "currency": "CAD", "amount": "3.00",
        "cardData": {"cardNumber": "4124939999999990", "cardExpiry": "0130", "cardCVV": "100"}
    });
    let pay = |key: &'static str, partner: Option<&'static str>| {
        let mut request = http
            .post(format!("{base}/v2/payment/purchase"))
            .header("api-token", token)
            .header("idempotency-key", key)
            .json(&body);
        if let Some(partner) = partner {
            request = request.header("partner-token", partner);
        }
        request.send()
    };
    let answered = |response: &reqwest::Response| {
        let header = response.headers().get("is-valid-partner-token");
        (
            response.status().as_u16(),
            header.map(|v| v.to_str().unwrap().to_string()),
        )
    };
    let first = pay("binary-test-key-000000000001", Some("partner-two"))
        .await
        .unwrap();
    assert_eq!(answered(&first), (200, Some("1".into())));
    let test_token = pay("binary-test-key-000000000002", Some("f29104118c0d65"))
        .await
        .unwrap();
    assert_eq!(
        answered(&test_token),
        (200, Some("0".into())),
        "the configured list replaces the default"
    );
    let none = pay("binary-test-key-000000000003", None).await.unwrap();
    assert_eq!(answered(&none), (200, Some("0".into())));
    // The key is forgotten after a second: the same key with another body is new.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let body = serde_json::json!({"ipAddress": "10.0.0.1", "currency": "CAD", "amount": "4.00",
        "cardData": {"cardNumber": "4124939999999990", "cardExpiry": "0130", "cardCVV": "100"}});
    let again = http
        .post(format!("{base}/v2/payment/purchase"))
        .header("api-token", token)
        .header("idempotency-key", "binary-test-key-000000000001")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    // With no terminal delay, a Smart Terminal request waits for the control call.
    let devices = json(
        http.get(format!("{base}/v2/devices"))
            .header("api-token", token),
    )
    .await;
    let code = listening_device(&devices);
    let sent = http
        .post(format!("{base}/v2/devices/{code}/payment/purchase"))
        .header("api-token", token)
        .json(&serde_json::json!({"currency": "CAD", "transactionAmount": 2, "invoiceNumber": "BIN-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = json(http.get(format!("{base}/sim/stats"))).await;
    assert_eq!(stats["runTimeTransactions"], 4, "{stats}");
    let done = http
        .post(format!("{base}/sim/devices/{code}/complete"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let stats = json(http.get(format!("{base}/sim/stats"))).await;
    assert_eq!(stats["runTimeTransactions"], 5);
    assert_eq!(
        stats["partnerTokens"],
        serde_json::json!({"valid": 1, "invalid": 1, "absent": 3})
    );
}
