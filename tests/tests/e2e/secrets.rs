//! A connected account's API token, sent in a signed `connectedAccount` webhook to the
//! real receiver and worker (each given only its own keys, logging at trace level), is
//! nowhere in clear afterwards: no column of any table, no message in any queue (the
//! dead-letter queue included), no log line, nor `reconctl accounts list`; the merchant
//! is registered as an account (its token encrypted, fingerprinted for the gateway).

use std::time::{Duration, Instant};

use lapin::options::BasicGetOptions;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;
use recon_queue::{Topology, WebhookEnvelope};
use recon_receiver::signature::sign;
use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use sqlx::Row;

use crate::binaries::{Running, derived_key, free_port, run_ok, wait_until_healthy};
use crate::stack::AMQP_URL;

const VERIFIER: &str = "cGFydG5lci12ZXJpZmllci10b2tlbi0wMTIzNDU2Nzg5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_account_token_is_nowhere_in_clear_in_tables_queues_or_trace_logs() {
    let db = TestDatabase::create().await;
    let prefix = format!("e2e-{:012x}", rand::rng().random::<u64>() >> 16);
    let master = MasterKey::generate().expose_secret().to_string();
    let base = vec![
        ("DATABASE_URL", db.url.clone()),
        ("AMQP_URL", AMQP_URL.to_string()),
        ("AMQP_PREFIX", prefix.clone()),
        ("AMQP_RETRY_DELAYS", "200ms,500ms".to_string()),
        ("WORKER_MAX_RETRIES", "1".to_string()),
        ("RUST_LOG", "trace".to_string()),
    ];
    let mut operator = base.clone();
    operator.push(("RECON_MASTER_KEY", master.clone()));
    run_ok("reconctl", &["migrate"], &operator);
    let mut adding = operator.clone();
    adding.push(("VERIFIER", VERIFIER.to_string()));
    run_ok(
        "reconctl",
        &[
            "accounts",
            "add",
            "partner",
            "--verifier-token-env",
            "VERIFIER",
        ],
        &adding,
    );
    let derived = run_ok("reconctl", &["keys", "derive"], &operator);
    let key = |name: &str| derived_key(&derived, name);

    let logs = std::env::temp_dir().join(format!("{prefix}.log"));
    let receiver_addr = format!("127.0.0.1:{}", free_port());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut receiver_env = base.clone();
    receiver_env.extend([
        ("RECEIVER_ADDR", receiver_addr.clone()),
        ("METRICS_ADDR", metrics_addr.clone()),
        ("RECON_VERIFIER_KEY", key("RECON_VERIFIER_KEY")),
        ("RECON_INTAKE_PUBLIC_KEY", key("RECON_INTAKE_PUBLIC_KEY")),
    ]);
    let _receiver = Running::start_logged("recon-receiver", &[], &receiver_env, &logs);
    wait_until_healthy(&format!("http://{metrics_addr}/readyz")).await;
    let worker_addr = format!("127.0.0.1:{}", free_port());
    let mut worker_env = base.clone();
    worker_env.extend([
        ("WORKER_ADDR", worker_addr.clone()),
        ("RECON_API_TOKEN_KEY", key("RECON_API_TOKEN_KEY")),
        ("RECON_INTAKE_PRIVATE_KEY", key("RECON_INTAKE_PRIVATE_KEY")),
        ("RECON_LOOKUP_KEY", key("RECON_LOOKUP_KEY")),
        ("HELCIM_API_BASE_URL", "http://127.0.0.1:9/v2".to_string()),
    ]);
    let _worker = Running::start_logged("recon-worker", &[], &worker_env, &logs);
    wait_until_healthy(&format!("http://{worker_addr}/readyz")).await;

    // One stored, one dead-lettered (no connectedAccountId to store it under).
    let stored = "CONNTOKEN-stored-7f3a9c";
    let dead = "CONNTOKEN-dead-b81e44";
    let http = reqwest::Client::new();
    for (id, body) in [
        (
            "msg_connected_stored",
            format!(
                r#"{{"type":"connectedAccount","data":{{"connectedAccountId":"ca-42","apiToken":"{stored}","status":"APPROVED"}}}}"#
            ),
        ),
        (
            "msg_connected_dead",
            format!(r#"{{"type":"connectedAccount","data":{{"apiToken":"{dead}"}}}}"#),
        ),
    ] {
        let ts = chrono::Utc::now().timestamp();
        let response = http
            .post(format!("http://{receiver_addr}/webhooks/helcim/partner"))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                sign(VERIFIER, id, ts, body.as_bytes()).unwrap(),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{id}");
    }

    wait_for(&db, "SELECT count(*) FROM connected_accounts", 1).await;
    wait_for(
        &db,
        "SELECT count(*) FROM webhook_deliveries WHERE outcome LIKE 'dead%'",
        1,
    )
    .await;
    let fingerprint: String =
        sqlx::query_scalar("SELECT api_token_fingerprint FROM connected_accounts")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        fingerprint,
        recon_store::crypto::fingerprint(&stored.to_string().into())
    );
    wait_for(
        &db,
        "SELECT count(*) FROM accounts WHERE account_id = 'connected-ca-42'",
        1,
    )
    .await;
    let (lookup, referred_by): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT api_token_lookup, referred_by FROM accounts WHERE account_id = 'connected-ca-42'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let lookup_key =
        recon_store::lookup::LookupKey::from_base64(&key("RECON_LOOKUP_KEY").into()).unwrap();
    assert_eq!(lookup, Some(lookup_key.fingerprint(stored)));
    assert_eq!(referred_by.as_deref(), Some("partner"));
    let listing = run_ok("reconctl", &["accounts", "list"], &operator);
    assert!(
        listing.contains(
            "connected-ca-42\t/webhooks/helcim/connected-ca-42\tyes\tnone\tnone\tpartner\tca-42"
        ),
        "{listing}"
    );

    for token in [stored, dead] {
        assert_eq!(
            hits_in_tables(&db, token).await,
            Vec::<String>::new(),
            "{token} in a table"
        );
        assert!(
            !std::fs::read_to_string(&logs).unwrap().contains(token),
            "{token} in the logs"
        );
        assert!(!listing.contains(token), "{token} in `accounts list`");
    }
    let messages = every_message(&prefix).await;
    let dead_letters = messages
        .iter()
        .filter(|(queue, _)| queue.ends_with("dead"))
        .count();
    assert_eq!(
        dead_letters, 1,
        "the dead-lettered one is there to be searched"
    );
    for (queue, data) in &messages {
        for token in [stored, dead] {
            assert!(
                !data.windows(token.len()).any(|w| w == token.as_bytes()),
                "{token} in clear in {queue}"
            );
        }
        assert!(
            data.windows(8).any(|w| w == b"[sealed]"),
            "a control: {queue}"
        );
        let envelope = WebhookEnvelope::decode_from(data).unwrap();
        assert!(
            envelope.sealed_secrets.is_some(),
            "the dead letter keeps its token, sealed"
        );
    }
    assert!(
        std::fs::read_to_string(&logs)
            .unwrap()
            .contains("registered the connected account"),
        "a control: the registration is logged"
    );
    let log_lines = std::fs::read_to_string(&logs).unwrap().lines().count();
    assert!(
        log_lines > 50,
        "trace logs were captured ({log_lines} lines)"
    );
    let _ = std::fs::remove_file(&logs);
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    Topology::new(&prefix)
        .with_retry_delays(vec![Duration::from_millis(200), Duration::from_millis(500)])
        .delete(&connection)
        .await
        .unwrap();
    db.drop_now().await;
}

async fn wait_for(db: &TestDatabase, sql: &'static str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap();
        if count >= expected {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {count} after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `table.column` for every column of every table whose value holds `token`: as text,
/// as the bytes of a `bytea`, or as their hex.
pub(crate) async fn hits_in_tables(db: &TestDatabase, token: &str) -> Vec<String> {
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS d
         FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(columns.len() > 20, "every table is searched");
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    let mut hits = Vec::new();
    for row in columns {
        let (table, column, kind): (String, String, String) =
            (row.get("t"), row.get("c"), row.get("d"));
        let condition = if kind == "bytea" {
            format!(
                "position(convert_to($1, 'UTF8') in \"{column}\") > 0 OR position($2 in encode(\"{column}\", 'hex')) > 0"
            )
        } else {
            format!(
                "position($1 in \"{column}\"::text) > 0 OR position($2 in \"{column}\"::text) > 0"
            )
        };
        let sql = format!("SELECT count(*) FROM \"{table}\" WHERE {condition}");
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(token)
            .bind(&hex)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if count > 0 {
            hits.push(format!("{table}.{column}"));
        }
    }
    hits
}

/// Every message in every queue of the prefix (work, retries, dead), taken off.
async fn every_message(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let topology = Topology::new(prefix)
        .with_retry_delays(vec![Duration::from_millis(200), Duration::from_millis(500)]);
    let mut queues = vec![topology.work_queue(), topology.dead_queue()];
    queues.extend([200, 500].map(|ms| topology.retry_queue(Duration::from_millis(ms))));
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut messages = Vec::new();
    for queue in queues {
        while let Ok(Some(message)) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
        {
            messages.push((queue.clone(), message.delivery.data.clone()));
        }
    }
    let _ = connection.close(200, "done".into()).await;
    messages
}
