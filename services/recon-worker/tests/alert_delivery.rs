//! Alerts leaving the worker: the outbox publisher on real RabbitMQ (including a
//! broker that is not there), and signed alert webhooks to a real local HTTP server
//! that checks the signature with its own code.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::options::BasicAckOptions;
use prost::Message;
use recon_attribution::{CloseCalendar, Month};
use recon_queue::envelope::alert::{AttributionAlert, Detail, EscalationDetail};
use recon_queue::{Broker, BrokerConfig, Topology};
use recon_store::attribution::alert_webhooks::AlertWebhooks;
use recon_store::testing::TestDatabase;
use recon_store::{MasterKey, SecretCipher};
use recon_worker::attribution::publish::{insert_alert, publish_pending};
use recon_worker::attribution::webhooks::{self, RetryPolicy};
use secrecy::SecretString;
use sqlx::PgPool;
use support::subscriber::{SECRET, Subscriber};

#[allow(dead_code)]
mod support;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

async fn escalation(pool: &PgPool, account: &str, secs: i64, now: DateTime<Utc>) -> i64 {
    let month = Month::new(2026, 11).unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id = insert_alert(
        &mut tx,
        &format!("escalation:{account}:{month}:{secs}"),
        "escalation",
        Some(account),
        month,
        CloseCalendar::default().close_of(month),
        now,
        Detail::Escalation(EscalationDetail {
            seconds_before_close: secs,
            open_gaps: 1,
            at_risk: vec![],
        }),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn alerts_wait_out_a_broker_outage_then_are_published_once_with_their_id() {
    let db = TestDatabase::create().await;
    let now = Utc::now();
    let first = escalation(&db.pool, "acct-a", 86_400, now).await;
    let second = escalation(&db.pool, "acct-b", 86_400, now).await;

    // Nobody listens on port 1: the publish fails and nothing is marked.
    let exchange = format!("test.alerts.{}", tag());
    let topology = Topology::new(format!("test-{}", tag())).with_alerts_exchange(&exchange);
    let mut down = BrokerConfig::new("amqp://guest:guest@127.0.0.1:1/%2f", topology.clone(), "t");
    down.connect_timeout = Duration::from_secs(1);
    let down = Broker::new(down);
    assert!(publish_pending(&db.pool, &down, now).await.is_err());
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attribution_alerts WHERE published_at IS NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 2);

    let broker = Broker::new(BrokerConfig::new(AMQP_URL, topology.clone(), "t"));
    let connection = broker.connection().await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut consumer =
        support::alerts::listen(&channel, &exchange, "attribution.escalation", "t").await;
    assert_eq!(publish_pending(&db.pool, &broker, now).await.unwrap(), 2);
    assert_eq!(publish_pending(&db.pool, &broker, now).await.unwrap(), 0);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        let alert = AttributionAlert::decode(delivery.data.as_slice()).unwrap();
        assert_eq!(
            delivery.properties.message_id().as_ref().unwrap().as_str(),
            alert.alert_id.to_string()
        );
        ids.push(alert.alert_id as i64);
    }
    assert_eq!(ids, [first, second]);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), consumer.next())
            .await
            .is_err(),
        "published once"
    );
    topology.delete(&connection).await.unwrap();
    broker.close().await;
    db.drop_now().await;
}

async fn statuses(pool: &PgPool) -> Vec<(String, String, i32)> {
    sqlx::query_as(
        "SELECT w.name, d.status, d.attempts FROM alert_webhook_deliveries d
           JOIN alert_webhooks w ON w.id = d.webhook_id ORDER BY w.name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn webhooks_are_signed_retried_with_backoff_dead_after_the_last_attempt_and_replayed() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let subscriber = Arc::new(Subscriber::default());
    subscriber
        .failures
        .lock()
        .unwrap()
        .extend([("flaky".to_string(), 2), ("broken".to_string(), usize::MAX)]);
    let port = subscriber.serve();
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let cipher = Arc::new(SecretCipher::new(master, vec![]));
    let store = AlertWebhooks::new(pool.clone(), cipher);
    let secret = SecretString::from(SECRET);
    for (name, accounts) in [
        ("flaky", vec![]),
        ("broken", vec!["acct-a".to_string()]),
        ("elsewhere", vec!["acct-z".to_string()]),
    ] {
        let url = format!("http://127.0.0.1:{port}/hooks/{name}");
        store.add(name, &url, &secret, &accounts).await.unwrap();
    }

    // Published: one delivery per matching webhook (not "elsewhere").
    let t0: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
    let alert_id = escalation(pool, "acct-a", 86_400, t0).await;
    let topology = Topology::new(format!("test-{}", tag()))
        .with_alerts_exchange(format!("test.alerts.{}", tag()));
    let broker = Broker::new(BrokerConfig::new(AMQP_URL, topology.clone(), "t"));
    assert_eq!(publish_pending(pool, &broker, t0).await.unwrap(), 1);
    assert_eq!(
        statuses(pool).await,
        vec![
            ("broken".into(), "pending".into(), 0),
            ("flaky".into(), "pending".into(), 0)
        ]
    );

    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let http = webhooks::client(&policy);
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(0))
            .await
            .unwrap(),
        (0, 2)
    );
    // Not due again before 10 s.
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(9))
            .await
            .unwrap(),
        (0, 0)
    );
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(10))
            .await
            .unwrap(),
        (0, 2)
    );
    // Then 20 s more (doubling).
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(29))
            .await
            .unwrap(),
        (0, 0)
    );
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(30))
            .await
            .unwrap(),
        (1, 1)
    );
    assert_eq!(
        statuses(pool).await,
        vec![
            ("broken".into(), "dead".into(), 3),
            ("flaky".into(), "delivered".into(), 3)
        ]
    );
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(10_000))
            .await
            .unwrap(),
        (0, 0)
    );

    let received = subscriber.received.lock().unwrap().clone();
    assert_eq!(received.len(), 6);
    for r in &received {
        assert!(r.signature_valid, "{r:?}");
        assert_eq!(r.webhook_id, alert_id.to_string());
        assert_eq!(r.body["alertId"], alert_id);
        assert_eq!(r.body["kind"], "escalation");
        assert_eq!(r.body["accountId"], "acct-a");
        assert_eq!(r.body["escalation"]["secondsBeforeClose"], 86_400);
    }
    assert!(received.iter().all(|r| r.hook != "elsewhere"));

    // Replay: dead → pending with fresh attempts; the subscriber is fixed meanwhile.
    subscriber
        .failures
        .lock()
        .unwrap()
        .insert("broken".into(), 0);
    assert_eq!(store.replay(Some("broken"), at(20_000)).await.unwrap(), 1);
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, at(20_000))
            .await
            .unwrap(),
        (1, 0)
    );
    assert_eq!(
        statuses(pool).await[0],
        ("broken".into(), "delivered".into(), 1)
    );
    topology
        .delete(&broker.connection().await.unwrap())
        .await
        .unwrap();
    broker.close().await;
    db.drop_now().await;
}
