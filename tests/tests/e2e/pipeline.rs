//! The simulator delivering to the real receiver, which queues on the real RabbitMQ:
//! every event the simulator planned is on the work queue, as often as it was sent.

use std::collections::HashMap;
use std::time::Duration;

use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;
use recon_queue::{Topology, WebhookEnvelope};
use recon_store::testing::TestDatabase;

use crate::binaries::{Running, free_port, register_sim_accounts, run_ok, wait_until_healthy};
use crate::stack::base_env;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_webhooks_reach_the_work_queue_through_the_receiver() {
    let db = TestDatabase::create().await;
    let prefix = format!("e2e-{:012x}", rand::rng().random::<u64>() >> 16);
    let env = base_env(&db, &prefix);

    let sim_addr = format!("127.0.0.1:{}", free_port());
    let receiver_addr = format!("127.0.0.1:{}", free_port());
    let webhook_url = format!("http://{receiver_addr}/webhooks/helcim/{{account_id}}");
    let faults = r#"{"webhooks":{"duplicateRate":0.05,"reorderWindow":5}}"#;
    let mut sim = Running::start(
        "recon-sim",
        &[
            "--addr",
            &sim_addr,
            "--seed",
            "11",
            "--transactions-per-account",
            "100",
            "--webhook-url",
            &webhook_url,
            "--webhook-rate",
            "0",
            "--webhook-retry-base-ms",
            "100",
            "--hold-deliveries",
            "--exit-when-delivered",
        ],
        &[("SIM_FAULTS", faults.to_string())],
    );
    wait_until_healthy(&format!("http://{sim_addr}/healthz")).await;
    let accounts = register_sim_accounts(&format!("http://{sim_addr}"), &env, false).await;
    let listing = run_ok("reconctl", &["accounts", "list"], &env);
    for account in &accounts {
        for token in account["verifierTokens"].as_array().unwrap() {
            assert!(
                !listing.contains(token.as_str().unwrap()),
                "tokens never print"
            );
        }
    }

    let mut receiver_env = env.clone();
    receiver_env.push(("RECEIVER_ADDR", receiver_addr.clone()));
    let mut receiver = Running::start("recon-receiver", &[], &receiver_env);
    wait_until_healthy(&format!("http://{receiver_addr}/readyz")).await;

    let started = reqwest::Client::new()
        .post(format!("http://{sim_addr}/sim/deliveries/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let (status, _sim) =
        tokio::task::spawn_blocking(move || (sim.wait(Duration::from_secs(90)), sim))
            .await
            .unwrap();
    assert!(status.expect("the simulator finished delivering").success());

    // What the simulator planned, recomputed: every delivery, duplicates included.
    let activity = recon_sim::generate(&recon_sim::GenerateConfig {
        seed: 11,
        transactions_per_account: 100,
        ..recon_sim::GenerateConfig::default()
    });
    let faults: recon_sim::faults::Faults = serde_json::from_str(faults).unwrap();
    let plan = recon_sim::webhooks::plan::plan(&activity, &faults.webhooks, 11);
    let mut planned: HashMap<String, usize> = HashMap::new();
    for delivery in &plan.deliveries {
        *planned.entry(delivery.webhook_id.clone()).or_default() += 1;
    }

    let depths = run_ok("reconctl", &["queues"], &env);
    assert!(depths.contains(&format!("{prefix}.work")), "{depths}");
    assert!(
        depths
            .lines()
            .any(|l| l.starts_with(&format!("{prefix}.work"))
                && l.ends_with(&plan.deliveries.len().to_string())),
        "{depths}"
    );

    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let topology = Topology::new(&prefix);
    let mut queued: HashMap<String, usize> = HashMap::new();
    while let Some(message) = channel
        .basic_get(
            topology.work_queue().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let envelope = WebhookEnvelope::decode_from(&message.delivery.data).unwrap();
        *queued.entry(envelope.webhook_id).or_default() += 1;
    }
    assert_eq!(
        queued, planned,
        "every planned delivery is queued exactly as often as it was sent"
    );

    let status = receiver.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "the receiver stops cleanly on SIGTERM: {status:?}"
    );
    topology.delete(&connection).await.unwrap();
    db.drop_now().await;
}
