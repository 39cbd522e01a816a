//! The month close, the frozen report and escalations on real Postgres (and, for the
//! escalations, two real worker processes on real RabbitMQ whose clock the test moves
//! with `RECON_CLOCK_OFFSET_FILE`).

#[allow(dead_code)]
mod support;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use lapin::options::BasicAckOptions;
use prost::Message;
use recon_attribution::month::Thresholds;
use recon_attribution::report::{Report, sha256_hex};
use recon_attribution::{CloseCalendar, Month};
use recon_queue::envelope::alert::{AttributionAlert, Detail};
use recon_store::attribution::report::{frozen_document, frozen_documents};
use recon_store::testing::TestDatabase;
use recon_worker::attribution::{close, escalate};
use sqlx::PgPool;
use support::seed;

const DELAY: Duration = Duration::from_secs(900);

fn november() -> Month {
    Month::new(2026, 11).unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn statuses(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT id, status FROM attribution_gaps ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn gaps_expire_at_the_close_and_the_frozen_report_never_changes() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let calendar = CloseCalendar::default();
    let month = november();
    let deadline = calendar.close_of(month);
    let open = seed::gap(pool, calendar, "acct-a", 1, month, 1_999, "open").await;
    let acked = seed::gap(pool, calendar, "acct-a", 2, month, 500, "acknowledged").await;
    let resolved = seed::gap(pool, calendar, "acct-b", 3, month, 700, "resolved").await;
    seed::verdict(pool, "acct-b", 4, month, 10_000, "attributed", None).await;
    // A gap of the next month is not touched by this close.
    let later = seed::gap(pool, calendar, "acct-a", 5, month.next(), 100, "open").await;

    let before = close::sweep(pool, calendar, DELAY, deadline - secs(1))
        .await
        .unwrap();
    assert_eq!(before, close::Closed::default());
    assert!(statuses(pool).await.iter().all(|(_, s)| s != "expired"));

    let at = close::sweep(pool, calendar, DELAY, deadline).await.unwrap();
    assert_eq!((at.expired, at.frozen.len()), (2, 0));
    let expected = vec![
        (open, "expired".to_string()),
        (acked, "expired".to_string()),
        (resolved, "resolved".to_string()),
        (later, "open".to_string()),
    ];
    assert_eq!(statuses(pool).await, expected);
    let events: Vec<(i64, String, Option<String>, String)> = sqlx::query_as(
        "SELECT gap_id, actor, from_status, to_status FROM attribution_gap_events ORDER BY gap_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        vec![
            (open, "engine".into(), Some("open".into()), "expired".into()),
            (
                acked,
                "engine".into(),
                Some("acknowledged".into()),
                "expired".into()
            ),
        ]
    );
    let verdicts: Vec<String> = sqlx::query_scalar(
        "SELECT verdict FROM attribution_transactions WHERE transaction_id IN (1, 2) ORDER BY transaction_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        verdicts,
        ["gap", "gap"],
        "the share was lost: the verdict stays gap"
    );

    let early = close::sweep(pool, calendar, DELAY, deadline + secs(899))
        .await
        .unwrap();
    assert!(early.frozen.is_empty(), "frozen before the delay");

    // The freeze runs late (a worker was down): asOf is still close + delay.
    let frozen = close::sweep(pool, calendar, DELAY, deadline + secs(5 * 3600))
        .await
        .unwrap();
    assert_eq!(frozen.frozen, vec![month]);
    let json = frozen_document(pool, month, "*", "json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(json.sha256, sha256_hex(&json.body));
    let report = Report::from_json(&json.body).unwrap();
    assert!(report.frozen);
    let freeze_at = (deadline + secs(900)).to_rfc3339_opts(SecondsFormat::Secs, true);
    assert_eq!(report.as_of, freeze_at);
    assert_eq!(report.accounts.len(), 2);
    assert_eq!(report.accounts[0].at_risk_volume, "24.99");
    let per_account = frozen_documents(
        pool,
        month,
        &[
            "*".into(),
            "acct-a".into(),
            "acct-b".into(),
            "acct-z".into(),
        ],
        "csv",
    )
    .await
    .unwrap();
    let scopes: Vec<&str> = per_account.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(scopes, ["*", "acct-a", "acct-b"]);
    let only_a = frozen_document(pool, month, "acct-a", "json")
        .await
        .unwrap()
        .unwrap();
    let only_a = Report::from_json(&only_a.body).unwrap();
    assert_eq!(only_a.accounts.len(), 1);
    assert_eq!(only_a.accounts[0].account_id, "acct-a");

    // The month_closed alert names the frozen JSON.
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM attribution_alerts WHERE dedupe_key = 'month_closed:2026-11'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let alert = AttributionAlert::decode(payload.as_slice()).unwrap();
    assert_eq!(
        (alert.kind.as_str(), alert.month.as_str()),
        ("month_closed", "2026-11")
    );
    assert_eq!(alert.deadline, deadline.timestamp());
    let Some(Detail::MonthClosed(detail)) = alert.detail else {
        panic!("not a month_closed detail: {alert:?}");
    };
    assert_eq!(
        (detail.expired_gaps, detail.report_sha256),
        (2, json.sha256.clone())
    );

    // Asked twice, and after late changes to the month: the same bytes.
    let again = frozen_document(pool, month, "*", "json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, json);
    let scopes = ["*".to_string(), "acct-a".into(), "acct-b".into()];
    let mut snapshot = Vec::new();
    for format in ["json", "csv"] {
        snapshot.push(
            frozen_documents(pool, month, &scopes, format)
                .await
                .unwrap(),
        );
    }
    seed::verdict(pool, "acct-c", 9, month, 4_200, "attributed", None).await;
    seed::verdict(pool, "acct-a", 11, month, 9_900, "attributed", None).await;
    seed::gap(pool, calendar, "acct-a", 10, month, 300, "open").await;
    let after = close::sweep(pool, calendar, DELAY, deadline + secs(6 * 3600))
        .await
        .unwrap();
    assert!(after.frozen.is_empty(), "a month is frozen once");
    assert_eq!(after.expired, 1, "a late gap still expires");
    for (i, format) in ["json", "csv"].into_iter().enumerate() {
        let now = frozen_documents(pool, month, &scopes, format)
            .await
            .unwrap();
        assert_eq!(now, snapshot[i], "{format}");
    }
    // The live report has moved on; the frozen one has not.
    let live = recon_store::attribution::report::live(
        pool,
        calendar,
        month,
        &recon_store::attribution::report::Scope::All,
        deadline + secs(900),
    )
    .await
    .unwrap();
    assert_ne!(live.accounts.len(), report.accounts.len());
    assert_eq!(
        frozen_document(pool, month, "*", "json")
            .await
            .unwrap()
            .unwrap(),
        json
    );
    assert!(
        frozen_document(pool, month, "acct-c", "json")
            .await
            .unwrap()
            .is_none()
    );
    let alerts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attribution_alerts WHERE kind = 'month_closed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(alerts, 1);
    db.drop_now().await;
}

#[tokio::test]
async fn replicas_freezing_at_once_make_one_report() {
    let db = TestDatabase::create().await;
    let calendar = CloseCalendar::default();
    let month = november();
    for (i, account) in ["a", "b", "c"].iter().enumerate() {
        seed::gap(&db.pool, calendar, account, i as i64, month, 1_000, "open").await;
        seed::verdict(
            &db.pool,
            account,
            100 + i as i64,
            month,
            2_000,
            "attributed",
            None,
        )
        .await;
    }
    let attempts = (0..8).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(async move { close::freeze(&pool, calendar, month, DELAY).await.unwrap() })
    });
    let won: Vec<bool> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let (reports, documents, alerts): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM attribution_reports),
                (SELECT count(*) FROM attribution_report_documents),
                (SELECT count(*) FROM attribution_alerts WHERE kind = 'month_closed')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((reports, documents, alerts), (1, 2 * (1 + 3), 1));
    db.drop_now().await;
}

#[tokio::test]
async fn several_thresholds_crossed_at_once_alert_only_the_nearest_with_the_money() {
    let db = TestDatabase::create().await;
    let pool = &db.pool;
    let calendar = CloseCalendar::default();
    let month = november();
    let deadline = calendar.close_of(month);
    sqlx::query("INSERT INTO accounts (account_id, revenue_share_bps) VALUES ('acct-a', 250)")
        .execute(pool)
        .await
        .unwrap();
    seed::gap(pool, calendar, "acct-a", 1, month, 1_999, "open").await;
    seed::gap(pool, calendar, "acct-a", 2, month, 5_000, "acknowledged").await;
    seed::gap(pool, calendar, "acct-b", 3, month, 100, "resolved").await;
    let thresholds = Thresholds::default();
    // 20 hours before the close: 7d, 2d and 1d crossed at once.
    let now = deadline - secs(20 * 3600);
    assert_eq!(
        escalate::sweep(pool, calendar, &thresholds, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        escalate::sweep(pool, calendar, &thresholds, now)
            .await
            .unwrap(),
        0
    );
    let rows: Vec<(String, i32, i32, bool)> = sqlx::query_as(
        "SELECT account_id, threshold_secs, open_gaps, alert_id IS NOT NULL
           FROM attribution_escalations ORDER BY threshold_secs DESC",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("acct-a".into(), 604_800, 2, false),
            ("acct-a".into(), 172_800, 2, false),
            ("acct-a".into(), 86_400, 2, true),
        ]
    );
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM attribution_alerts WHERE dedupe_key = 'escalation:acct-a:2026-11:86400'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let alert = AttributionAlert::decode(payload.as_slice()).unwrap();
    assert_eq!(alert.account_id, "acct-a");
    let Some(Detail::Escalation(detail)) = alert.detail else {
        panic!("not an escalation: {alert:?}");
    };
    assert_eq!((detail.seconds_before_close, detail.open_gaps), (86_400, 2));
    assert_eq!(detail.at_risk.len(), 1);
    let money = &detail.at_risk[0];
    assert_eq!(
        (
            money.currency.as_str(),
            money.amount.as_str(),
            money.share.as_str()
        ),
        ("CAD", "69.99", "1.74")
    );
    // After the close nothing escalates (the close speaks).
    assert_eq!(
        escalate::sweep(pool, calendar, &thresholds, deadline)
            .await
            .unwrap(),
        0
    );
    db.drop_now().await;
}

mod two_workers {
    use super::*;
    use std::process::{Child, Command, Stdio};

    struct Worker(Child);

    impl Drop for Worker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start(
        db: &TestDatabase,
        master: &str,
        prefix: &str,
        clock: &std::path::Path,
        addr: &str,
    ) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_recon-worker"))
            .env("DATABASE_URL", &db.url)
            .env("RECON_MASTER_KEY", master)
            .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env("AMQP_PREFIX", prefix)
            .env("WORKER_ADDR", addr)
            .env("RECON_ATTRIBUTION_SWEEP_INTERVAL", "1")
            .env("RECON_CLOCK_OFFSET_FILE", clock)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("recon-worker starts");
        Worker(child)
    }

    /// Moves both workers' clock to `at`.
    fn set_clock(file: &std::path::Path, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_seconds();
        std::fs::write(file, offset.to_string()).unwrap();
    }

    async fn escalations(pool: &PgPool) -> Vec<(String, i32, bool)> {
        sqlx::query_as(
            "SELECT account_id, threshold_secs, alert_id IS NOT NULL FROM attribution_escalations
              ORDER BY account_id, threshold_secs DESC",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    }

    async fn wait_for<F, Fut>(what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn escalations_fire_once_per_threshold_and_alerts_reach_recon_alerts() {
        let db = TestDatabase::create().await;
        let pool = &db.pool;
        let calendar = CloseCalendar::default();
        // A month whose close is ahead of the real clock, so only the offset moves time.
        let month = calendar.month_of(Utc::now()).next().next();
        let deadline = calendar.close_of(month);
        let tag = format!("{:08x}", rand::random::<u32>());
        let (a, b) = (format!("esc-a-{tag}"), format!("esc-b-{tag}"));
        seed::gap(pool, calendar, &a, 1, month, 1_999, "open").await;
        seed::gap(pool, calendar, &a, 2, month, 500, "acknowledged").await;
        seed::gap(pool, calendar, &b, 3, month, 100, "open").await;
        seed::gap(pool, calendar, "esc-done", 4, month, 100, "resolved").await;

        // A queue of ours on the shared recon.alerts exchange.
        let connection = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let topology = recon_queue::Topology::new(format!("test-{tag}"));
        topology.declare(&connection).await.unwrap();
        let mut consumer = support::alerts::listen(
            &channel,
            recon_queue::topology::ALERTS_EXCHANGE,
            "attribution.#",
            "test",
        )
        .await;

        let clock = std::env::temp_dir().join(format!("recon-clock-{tag}"));
        set_clock(&clock, deadline - secs(8 * 86_400));
        let master = recon_store::MasterKey::generate();
        // A webhook for account a only, registered under the workers' master key.
        let subscriber = std::sync::Arc::new(support::subscriber::Subscriber::default());
        let port = subscriber.serve();
        let cipher = recon_store::SecretCipher::new(
            recon_store::MasterKey::from_base64(&master, "TEST").unwrap(),
            vec![],
        );
        recon_store::attribution::alert_webhooks::AlertWebhooks::new(
            pool.clone(),
            std::sync::Arc::new(cipher),
        )
        .add(
            "ops",
            &format!("http://127.0.0.1:{port}/hooks/ops"),
            &secrecy::SecretString::from(support::subscriber::SECRET),
            std::slice::from_ref(&a),
        )
        .await
        .unwrap();
        let master = secrecy::ExposeSecret::expose_secret(&master).to_string();
        let prefix = format!("test-{tag}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _one = start(&db, &master, &prefix, &clock, &format!("127.0.0.1:{port}"));
        let _two = start(&db, &master, &prefix, &clock, "127.0.0.1:0");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(escalations(pool).await.is_empty(), "nothing before T-7d");

        // The gauges on /metrics: 3 unresolved gaps (the resolved one not counted),
        // 25.99 CAD at risk, and the seconds to the close of the clock's month.
        let metrics_url = format!("http://127.0.0.1:{port}/metrics");
        wait_for("the gauges", || async {
            let Ok(response) = reqwest::get(&metrics_url).await else {
                return false;
            };
            let text = response.text().await.unwrap_or_default();
            text.contains("attribution_gaps_open{class=\"unattributed\"} 3")
                && text.contains("attribution_gaps_open{class=\"token_rejected\"} 0")
                && text.contains("attribution_money_at_risk{currency=\"CAD\"} 25.99")
                && text.contains("attribution_seconds_to_close ")
        })
        .await;

        let steps = [7 * 86_400, 2 * 86_400, 86_400, 6 * 3_600];
        for (n, threshold) in steps.iter().enumerate() {
            set_clock(&clock, deadline - secs(threshold - 30));
            wait_for("the escalations of the threshold", || async {
                escalations(pool).await.len() == 2 * (n + 1)
            })
            .await;
        }
        // Both workers kept sweeping meanwhile; give them a few more rounds to double
        // anything they would.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rows = escalations(pool).await;
        let mut expected = Vec::new();
        for account in [&a, &b] {
            for t in steps {
                expected.push((account.clone(), t as i32, true));
            }
        }
        assert_eq!(rows, expected);

        // Eight escalation alerts, each published once, decoding as AttributionAlert.
        let mut seen = Vec::new();
        let collect = async {
            while seen.len() < 8 {
                let delivery = consumer.next().await.unwrap().unwrap();
                delivery.ack(BasicAckOptions::default()).await.unwrap();
                let alert = AttributionAlert::decode(delivery.data.as_slice()).unwrap();
                if alert.account_id != a && alert.account_id != b {
                    continue; // another test's alert on the shared exchange
                }
                assert_eq!(delivery.routing_key.as_str(), "attribution.escalation");
                let props = &delivery.properties;
                assert_eq!(
                    props.message_id().as_ref().map(|s| s.as_str().to_string()),
                    Some(alert.alert_id.to_string())
                );
                assert_eq!(
                    props.content_type().as_ref().map(|s| s.as_str()),
                    Some("application/x-protobuf; proto=helcim_recon.v1.AttributionAlert")
                );
                assert_eq!(props.delivery_mode(), &Some(2));
                let Some(Detail::Escalation(detail)) = alert.detail else {
                    panic!("{alert:?}");
                };
                let gaps = if alert.account_id == a { 2 } else { 1 };
                assert_eq!(detail.open_gaps, gaps);
                seen.push((
                    alert.account_id.clone(),
                    detail.seconds_before_close,
                    alert.alert_id,
                ));
            }
        };
        tokio::time::timeout(Duration::from_secs(30), collect)
            .await
            .expect("8 alerts");
        let mut ids: Vec<u64> = seen.iter().map(|s| s.2).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 8, "{seen:?}");

        // The webhook got account a's four escalations, signed, once each.
        wait_for("the webhook deliveries", || async {
            subscriber.received.lock().unwrap().len() >= 4
        })
        .await;
        let received = subscriber.received.lock().unwrap().clone();
        assert_eq!(received.len(), 4, "{received:?}");
        assert!(
            received
                .iter()
                .all(|r| r.signature_valid && r.body["accountId"] == a.as_str())
        );
        let mut ids: Vec<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);

        // The close: expiry, then one frozen report and one month_closed alert.
        set_clock(&clock, deadline + secs(900 + 30));
        wait_for("the freeze", || async {
            recon_store::attribution::report::is_frozen(pool, month)
                .await
                .unwrap()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (reports, closed, expired, unpublished): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM attribution_reports),
                    (SELECT count(*) FROM attribution_alerts WHERE kind = 'month_closed'),
                    (SELECT count(*) FROM attribution_gaps WHERE status = 'expired'),
                    (SELECT count(*) FROM attribution_alerts WHERE published_at IS NULL)",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!((reports, closed, expired, unpublished), (1, 1, 3, 0));
        drop(_one);
        drop(_two);
        let _ = std::fs::remove_file(&clock);
        let _ = topology.delete(&connection).await;
        db.drop_now().await;
    }
}
