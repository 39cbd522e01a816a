//! `reconctl alerts webhooks add|list|remove|replay` as an operator runs them: the
//! built binary against a fresh Postgres database.

use std::process::Command;

use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn reconctl(db: &TestDatabase, master: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_reconctl"))
        .args(["alerts", "webhooks"])
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RECON_MASTER_KEY", master)
        .env("SUBSCRIBER_SECRET", SECRET)
        .env("RUST_LOG", "error")
        .output()
        .expect("reconctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn webhooks_are_added_listed_without_secrets_replayed_and_removed() {
    let db = TestDatabase::create().await;
    let master = MasterKey::generate();
    let master = master.expose_secret();
    let add = |name: &str, url: &str, extra: &[&str]| {
        let mut args = vec![
            "add",
            "--name",
            name,
            "--url",
            url,
            "--secret-env",
            "SUBSCRIBER_SECRET",
        ];
        args.extend_from_slice(extra);
        reconctl(&db, master, &args)
    };
    let (ok, out) = add("ops", "https://hooks.example.com/recon", &[]);
    assert!(ok, "{out}");
    let (ok, out) = add(
        "partner-a",
        "http://127.0.0.1:9/x",
        &["--account", "a1", "--account", "a2"],
    );
    assert!(ok, "{out}");
    let (ok, out) = add("plain", "http://hooks.example.com/x", &[]);
    assert!(!ok && out.contains("loopback"), "{out}");
    let (ok, out) = add("ops", "https://other.example.com/", &[]);
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = reconctl(
        &db,
        master,
        &[
            "add",
            "--name",
            "nosecret",
            "--url",
            "https://x.example/",
            "--secret-env",
            "NOT_SET_ANYWHERE",
        ],
    );
    assert!(!ok && out.contains("NOT_SET_ANYWHERE is not set"), "{out}");

    let (ok, list) = reconctl(&db, master, &["list"]);
    assert!(ok, "{list}");
    assert!(
        list.contains("ops\thttps://hooks.example.com/recon\taccounts: every account"),
        "{list}"
    );
    assert!(
        list.contains("partner-a\thttp://127.0.0.1:9/x\taccounts: a1,a2"),
        "{list}"
    );
    assert!(
        !list.contains("whsec_") && !list.contains("MfKQ9r8"),
        "{list}"
    );

    // Stored encrypted: the secret's bytes are nowhere in the row.
    let pool = recon_store::database::connect(&db.url).await.unwrap();
    let blobs: Vec<Vec<u8>> = sqlx::query_scalar("SELECT secret_encrypted FROM alert_webhooks")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(blobs.len(), 2);
    for blob in blobs {
        assert!(!blob.windows(10).any(|w| w == &SECRET.as_bytes()[6..16]));
    }

    // A dead delivery goes back to pending.
    sqlx::query(
        "INSERT INTO attribution_alerts (dedupe_key, kind, month, payload, created_at)
         VALUES ('month_closed:2026-11', 'month_closed', '2026-11-01', '\\x', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO alert_webhook_deliveries (alert_id, webhook_id, status, attempts, next_attempt_at)
         SELECT a.id, w.id, 'dead', 12, now() FROM attribution_alerts a, alert_webhooks w WHERE w.name = 'ops'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, out) = reconctl(&db, master, &["replay", "--name", "ops"]);
    assert!(
        ok && out.contains("1 dead deliveries back to pending"),
        "{out}"
    );
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM alert_webhook_deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 0));

    let (ok, out) = reconctl(&db, master, &["remove", "--name", "ops"]);
    assert!(ok, "{out}");
    let (ok, out) = reconctl(&db, master, &["remove", "--name", "ops"]);
    assert!(!ok && out.contains("no alert webhook named"), "{out}");
    let (_, list) = reconctl(&db, master, &["list"]);
    assert!(
        !list.contains("ops\t") && list.contains("partner-a"),
        "{list}"
    );
    pool.close().await;
    db.drop_now().await;
}
