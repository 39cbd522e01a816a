use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;
use recon_queue::{Topology, WebhookEnvelope};
use recon_receiver::accounts::{AccountSource, StaticAccounts};
use recon_receiver::config::Settings;
use recon_receiver::signature::sign;
use recon_receiver::startup::{Application, Clock};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const ACCOUNT: &str = "acct-test";
/// The account's current verifier token and the one being rotated out.
pub const TOKEN_NEW: &str = "bmV3LXZlcmlmaWVyLXRva2VuLTAxMjM0NTY3ODk=";
pub const TOKEN_OLD: &str = "b2xkLXZlcmlmaWVyLXRva2VuLTk4NzY1NDMyMTA=";
pub const TOKEN_UNKNOWN: &str = "c29tZWJvZHktZWxzZXMtdG9rZW4tMTExMTExMQ==";

/// A receiver serving on a free port with its own queues.
pub struct TestReceiver {
    pub url: String,
    pub topology: Topology,
    pub handle: actix_web::dev::ServerHandle,
    pub http: reqwest::Client,
}

pub struct Options {
    pub amqp_url: String,
    pub clock: Clock,
    pub confirm_timeout_ms: u64,
    pub body_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            amqp_url: AMQP_URL.into(),
            clock: Clock::System,
            confirm_timeout_ms: 5000,
            body_timeout_ms: 10_000,
        }
    }
}

pub fn unique_prefix() -> String {
    format!("test-{:016x}", rand::rng().random::<u64>())
}

pub async fn spawn_receiver(options: Options) -> TestReceiver {
    let prefix = unique_prefix();
    let mut settings = Settings::for_tests(&prefix);
    settings.amqp.url = options.amqp_url.clone().into();
    settings.amqp_confirm_timeout_ms = options.confirm_timeout_ms;
    settings.body_timeout_ms = options.body_timeout_ms;
    let tokens = format!("{TOKEN_NEW} {TOKEN_OLD}");
    let sources: Vec<Box<dyn AccountSource>> =
        vec![Box::new(StaticAccounts::single(ACCOUNT, &tokens).unwrap())];
    let app = Application::build_with_clock(&settings, sources, options.clock)
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestReceiver {
        url,
        topology: Topology::new(prefix),
        handle,
        http: reqwest::Client::new(),
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A signed delivery, ready to send.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

pub fn delivery(webhook_id: &str, body: &str, token: &str, timestamp: i64) -> Delivery {
    Delivery {
        webhook_id: webhook_id.into(),
        timestamp: timestamp.to_string(),
        signature: sign(token, webhook_id, timestamp, body.as_bytes()).unwrap(),
        body: body.into(),
    }
}

pub fn card_transaction(webhook_id: &str, transaction_id: u64) -> Delivery {
    let body = format!(r#"{{"id":"{transaction_id}","type":"cardTransaction"}}"#);
    delivery(webhook_id, &body, TOKEN_NEW, now())
}

impl TestReceiver {
    pub async fn send_to(&self, account: &str, delivery: &Delivery) -> reqwest::Response {
        self.http
            .post(format!("{}/webhooks/helcim/{account}", self.url))
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.webhook_id)
            .header("webhook-timestamp", &delivery.timestamp)
            .header("webhook-signature", &delivery.signature)
            .body(delivery.body.clone())
            .send()
            .await
            .unwrap()
    }

    pub async fn send(&self, delivery: &Delivery) -> reqwest::Response {
        self.send_to(ACCOUNT, delivery).await
    }

    /// Takes every message off the work queue (acking them) and decodes it.
    pub async fn drain_work_queue(&self) -> Vec<(lapin::BasicProperties, WebhookEnvelope)> {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(
                self.topology.work_queue().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let envelope = WebhookEnvelope::decode_from(&message.delivery.data).unwrap();
            messages.push((message.delivery.properties.clone(), envelope));
        }
        let _ = connection.close(200, "done".into()).await;
        messages
    }

    /// Messages waiting in the work queue, without taking them.
    pub async fn work_queue_depth(&self) -> u32 {
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                self.topology.work_queue().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = connection.close(200, "done".into()).await;
        queue.message_count()
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server and deletes the test's queues.
    pub async fn finish(self) {
        self.handle.stop(true).await;
        let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        self.topology.delete(&connection).await.unwrap();
        let _ = connection.close(200, "done".into()).await;
    }
}
