use std::time::Duration;

use chrono::{DateTime, Utc};
use recon_store::api_keys::{self, Role};
use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn a_revoked_key_is_refused_from_the_very_next_request() {
    let api = Harness::start(Options::default()).await;
    let key = api.key(Role::Finance, None).await;
    assert_eq!(api.transaction(&key).await.status(), 200);
    assert_eq!(api.transaction(&key).await.status(), 200);

    let prefix = &key[..api_keys::PREFIX_LEN];
    let revoked = api_keys::revoke(&api.db.pool, prefix).await.unwrap();
    assert!(revoked.revoked_at.is_some());

    let response = api.transaction(&key).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    api.stop().await;
}

#[tokio::test]
async fn an_expired_key_is_refused_with_a_message_that_says_it_expired() {
    let api = Harness::start(Options::default()).await;
    let soon = Utc::now() + chrono::Duration::hours(1);
    let key = api.key_expiring(Role::Finance, None, Some(soon)).await;
    assert_eq!(
        api.transaction(&key).await.status(),
        200,
        "valid until expiry"
    );

    // The hour passes.
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second'")
        .execute(&api.db.pool)
        .await
        .unwrap();
    let response = api.transaction(&key).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("expired at"), "{message}");
    assert!(message.contains("new one"), "{message}");
    api.stop().await;
}

#[tokio::test]
async fn a_key_records_its_last_use_without_a_write_per_request() {
    let api = Harness::start(Options::default()).await;
    let key = api.key(Role::Finance, None).await;
    let last_used = || async {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>("SELECT last_used_at FROM api_keys")
            .fetch_one(&api.db.pool)
            .await
            .unwrap()
    };
    assert_eq!(last_used().await, None);

    assert_eq!(api.transaction(&key).await.status(), 200);
    eventually(
        Duration::from_secs(5),
        "last_used_at is written",
        || async { last_used().await.is_some() },
    )
    .await;
    let first = last_used().await;

    for _ in 0..5 {
        assert_eq!(api.transaction(&key).await.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(last_used().await, first, "written at most once a minute");
    api.stop().await;
}

#[tokio::test]
async fn a_key_created_after_junk_was_refused_works_at_once() {
    let api = Harness::start(Options::default()).await;
    assert_eq!(api.transaction("hrk_junk").await.status(), 401);
    assert_eq!(api.transaction("hrk_junk").await.status(), 401);
    let key = api.key(Role::Finance, None).await;
    assert_eq!(api.transaction(&key).await.status(), 200);
    api.stop().await;
}
