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
use recon_worker::attribution::publish::{Published, insert_alert, publish_pending};
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
    assert_eq!(
        publish_pending(&db.pool, &broker, now).await.unwrap(),
        Published {
            published: 2,
            unroutable: 0
        }
    );
    assert_eq!(
        publish_pending(&db.pool, &broker, now)
            .await
            .unwrap()
            .published,
        0
    );
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
    // Nobody bound to the exchange: returned by RabbitMQ, yet marked published (the
    // webhooks still go) and counted.
    assert_eq!(
        publish_pending(pool, &broker, t0).await.unwrap(),
        Published {
            published: 1,
            unroutable: 1
        }
    );
    assert_eq!(
        statuses(pool).await,
        vec![
            ("broken".into(), "pending".into(), 0),
            ("flaky".into(), "pending".into(), 0)
        ]
    );
    // Published again (`reconctl alerts republish`): no second delivery per webhook.
    sqlx::query("UPDATE attribution_alerts SET published_at = NULL")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        publish_pending(pool, &broker, t0).await.unwrap().published,
        1
    );
    assert_eq!(statuses(pool).await.len(), 2);

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

/// A subscriber that takes `delay` to answer each POST (204) and counts the
/// `webhook-id`s it got: a plain TCP server, one request per connection.
async fn slow_subscriber(delay: Duration) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0_u8; 4096];
                // Headers, then as many body bytes as content-length says.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            let id = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("webhook-id:")
                                        .map(|v| v.trim().to_string())
                                })
                                .unwrap_or_default();
                            log.lock().unwrap().push(id);
                            break;
                        }
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_slow_subscriber_gets_each_alert_once_with_two_replicas_delivering() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let (port, seen) = slow_subscriber(Duration::from_millis(700)).await;
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let store = AlertWebhooks::new(pool.clone(), Arc::new(SecretCipher::new(master, vec![])));
    let url = format!("http://127.0.0.1:{port}/hooks/slow");
    store
        .add("slow", &url, &SecretString::from(SECRET), &[])
        .await
        .unwrap();
    let now = Utc::now();
    let mut ids = Vec::new();
    for account in ["a", "b", "c", "d", "e", "f"] {
        let id = escalation(pool, account, 86_400, now).await;
        let mut tx = pool.begin().await.unwrap();
        recon_store::attribution::alert_webhooks::enqueue(&mut tx, id, Some(account), now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ids.push(id.to_string());
    }

    // Each attempt may take 1 s; six answers of 0.7 s one after the other outlast the
    // 3 s lease, so a second replica, looking 3.5 s later, must still find nothing
    // that the first has not already delivered or is delivering.
    let policy = RetryPolicy {
        timeout: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let http = webhooks::client(&policy);
    let first = {
        let (store, http) = (store.clone(), http.clone());
        tokio::spawn(async move {
            webhooks::deliver_due(&store, &http, &policy, Utc::now())
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let second = webhooks::deliver_due(&store, &http, &policy, Utc::now())
        .await
        .unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.0 + second.0, 6, "{first:?} {second:?}");
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every alert POSTed exactly once");
    assert_eq!(
        statuses(pool)
            .await
            .iter()
            .filter(|s| s.1 == "delivered")
            .count(),
        6
    );
    db.drop_now().await;
}

#[tokio::test]
async fn webhooks_are_never_sent_to_internal_addresses() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let store = AlertWebhooks::new(pool.clone(), Arc::new(SecretCipher::new(master, vec![])));
    // A listener on loopback that counts connections: none may arrive.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // This machine's own name resolves to loopback or to its private address
    // (/etc/hosts, or the cluster's DNS): an internal address, as a subscriber's name
    // re-pointed inside the network would.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let named = format!("https://{host}:{port}/hook");
    let resolved: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .unwrap()
        .map(|a| a.ip())
        .collect();
    assert!(
        resolved
            .iter()
            .all(|ip| !recon_store::attribution::alert_webhooks::is_public(*ip)),
        "this test needs the machine's name ({host}) to resolve to internal addresses: {resolved:?}"
    );
    store
        .add("named", &named, &SecretString::from(SECRET), &[])
        .await
        .unwrap();
    // The cloud metadata address is refused when registered.
    let refused = store
        .add(
            "metadata",
            "https://169.254.169.254/latest/meta-data/",
            &SecretString::from(SECRET),
            &[],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not a public address"), "{refused}");

    let now = Utc::now();
    let id = escalation(pool, "acct-a", 86_400, now).await;
    let mut tx = pool.begin().await.unwrap();
    recon_store::attribution::alert_webhooks::enqueue(&mut tx, id, Some("acct-a"), now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let policy = RetryPolicy {
        timeout: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let http = webhooks::client(&policy);
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, now)
            .await
            .unwrap(),
        (0, 1)
    );
    let error: String = sqlx::query_scalar("SELECT last_error FROM alert_webhook_deliveries")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        error.contains(&format!("{host} resolves to")) && error.contains("not a public address"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A URL stored by hand, to a private address, with a token in its query: refused
    // before any connection, and the reason (in the database and the log) names the
    // address, never the URL.
    sqlx::query("UPDATE alert_webhooks SET url = 'https://10.0.0.7/hook?token=s3cr3t'")
        .execute(pool)
        .await
        .unwrap();
    let later = now + chrono::Duration::seconds(10);
    assert_eq!(
        webhooks::deliver_due(&store, &http, &policy, later)
            .await
            .unwrap(),
        (0, 1)
    );
    let error: String = sqlx::query_scalar("SELECT last_error FROM alert_webhook_deliveries")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        error.contains("10.0.0.7 is not a public address") && !error.contains("s3cr3t"),
        "{error}"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_secret_this_worker_cannot_decrypt_fails_its_attempts_and_dies_instead_of_waiting_forever()
 {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let key = |_: ()| MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let added_with = AlertWebhooks::new(pool.clone(), Arc::new(SecretCipher::new(key(()), vec![])));
    added_with
        .add(
            "elsewhere",
            "http://127.0.0.1:1/hook",
            &SecretString::from(SECRET),
            &[],
        )
        .await
        .unwrap();
    let now = Utc::now();
    let id = escalation(pool, "acct-a", 86_400, now).await;
    let mut tx = pool.begin().await.unwrap();
    recon_store::attribution::alert_webhooks::enqueue(&mut tx, id, Some("acct-a"), now)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A worker given another key (a rotation gone wrong).
    let worker = AlertWebhooks::new(pool.clone(), Arc::new(SecretCipher::new(key(()), vec![])));
    let policy = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    let http = webhooks::client(&policy);
    assert_eq!(
        webhooks::deliver_due(&worker, &http, &policy, now)
            .await
            .unwrap(),
        (0, 1)
    );
    let (status, attempts, error): (String, i32, String) =
        sqlx::query_as("SELECT status, attempts, last_error FROM alert_webhook_deliveries")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    assert!(error.contains("cannot decrypt"), "{error}");
    assert!(!error.contains("whsec_"), "{error}");
    let later = now + chrono::Duration::seconds(10);
    assert_eq!(
        webhooks::deliver_due(&worker, &http, &policy, later)
            .await
            .unwrap(),
        (0, 1)
    );
    assert_eq!(
        statuses(pool).await,
        vec![("elsewhere".into(), "dead".into(), 2)]
    );
    db.drop_now().await;
}
