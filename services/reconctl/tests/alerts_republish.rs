//! `reconctl alerts republish`: alerts published before anyone bound a queue to the
//! alerts exchange are put back in the outbox for the workers to publish again.

use recon_store::testing::TestDatabase;

mod support;

/// `reconctl alerts <args>`.
fn reconctl(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    support::reconctl(db, &[&["alerts"], args].concat())
}

async fn alert(db: &TestDatabase, key: &str, kind: &str, created_at: &str) {
    sqlx::query(
        "INSERT INTO attribution_alerts (dedupe_key, kind, month, payload, created_at, published_at)
         VALUES ($1, $2, '2026-11-01', '\\x'::bytea, $3::timestamptz, $3::timestamptz)",
    )
    .bind(key)
    .bind(kind)
    .bind(created_at)
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn unpublished(db: &TestDatabase) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT dedupe_key FROM attribution_alerts WHERE published_at IS NULL ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn alerts_since_an_instant_are_published_again() {
    let db = TestDatabase::create().await;
    alert(&db, "gap_opened:1", "gap_opened", "2026-11-20T10:00:00Z").await;
    alert(&db, "gap_opened:2", "gap_opened", "2026-11-22T10:00:00Z").await;
    alert(
        &db,
        "escalation:a:2026-11:86400",
        "escalation",
        "2026-11-22T11:00:00Z",
    )
    .await;

    let (ok, text) = reconctl(
        &db,
        &[
            "republish",
            "--since",
            "2026-11-21T00:00:00Z",
            "--kind",
            "escalation",
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("1 alerts created since 2026-11-21T00:00:00Z"),
        "{text}"
    );
    assert_eq!(unpublished(&db).await, vec!["escalation:a:2026-11:86400"]);

    let (ok, text) = reconctl(&db, &["republish", "--since", "2026-11-21T00:00:00Z"]);
    assert!(ok && text.contains("1 alerts"), "{text}");
    assert_eq!(
        unpublished(&db).await,
        vec!["gap_opened:2", "escalation:a:2026-11:86400"]
    );

    let (ok, text) = reconctl(&db, &["republish", "--since", "yesterday"]);
    assert!(!ok && text.contains("RFC 3339"), "{text}");
    let (ok, text) = reconctl(
        &db,
        &[
            "republish",
            "--since",
            "2026-11-21T00:00:00Z",
            "--kind",
            "gaps",
        ],
    );
    assert!(!ok && text.contains("gap_opened, gap_resolved"), "{text}");
    db.drop_now().await;
}
