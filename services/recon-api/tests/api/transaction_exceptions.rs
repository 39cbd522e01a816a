//! The single-transaction endpoint shows the transaction's unresolved reconciliation
//! exceptions, and its reconciliation status is `exception` while there is one.

use recon_store::api_keys::Role;
use serde_json::{Value, json};

use crate::harness::{ACCOUNT, Harness, Options, TRANSACTION};

async fn raise(api: &Harness, class: &str, key: &str, status: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO reconciliation_exceptions (account_id, class, transaction_id, dedupe_key,
             summary, evidence, status, resolution, resolved_at)
         VALUES ($1, $2, $3, $4, 'look', '{}', $5,
                 CASE WHEN $5 = 'resolved' THEN 'person' END,
                 CASE WHEN $5 = 'resolved' THEN now() END)
         RETURNING id",
    )
    .bind(ACCOUNT)
    .bind(class)
    .bind(TRANSACTION)
    .bind(key)
    .bind(status)
    .fetch_one(&api.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn unresolved_exceptions_are_listed_and_make_the_status_exception() {
    let api = Harness::start(Options::default()).await;
    let finance = api.key(Role::Finance, None).await;
    let body: Value = api.transaction(&finance).await.json().await.unwrap();
    assert_eq!(body["reconciliation"]["status"], "matched");
    assert_eq!(body["reconciliation"]["exceptions"], json!([]));

    raise(
        &api,
        "amount_changed",
        "amount_changed:tx:9001:1->2",
        "resolved",
    )
    .await;
    let body: Value = api.transaction(&finance).await.json().await.unwrap();
    assert_eq!(
        body["reconciliation"]["status"], "matched",
        "resolved ones do not count"
    );

    let open = raise(
        &api,
        "duplicate_suspect",
        "duplicate_suspect:tx:9001",
        "open",
    )
    .await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    for key in [&finance, &partner] {
        let body: Value = api.transaction(key).await.json().await.unwrap();
        assert_eq!(body["reconciliation"]["status"], "exception");
        assert_eq!(
            body["reconciliation"]["exceptions"],
            json!([{"id": open, "class": "duplicate_suspect", "status": "open"}])
        );
    }
    api.stop().await;
}
