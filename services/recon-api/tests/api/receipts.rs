//! `POST /v1/attribution/receipts`: what is stored, idempotency, concurrency, metrics.

use chrono::{DateTime, TimeZone, Utc};
use recon_store::api_keys::Role;
use serde_json::json;
use sqlx::Row;

use crate::harness::*;
use crate::receipt_support::*;

#[tokio::test]
async fn a_valid_batch_is_stored_as_receipt_evidence_naming_the_key_that_sent_it() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let mut second = receipt("r-2", ACCOUNT);
    second["transactionId"] = json!(null);
    second["amount"] = json!("5");
    second["currency"] = json!("USD");
    second["partnerTokenSent"] = json!(false);
    second["isValidPartnerToken"] = json!(null);
    second["observedAt"] = json!("2026-11-01T16:00:00Z");

    let (status, body) = post_batch(&api, &partner, &[receipt("r-1", ACCOUNT), second]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"received": 2, "stored": 2, "alreadyRecorded": 0})
    );

    let rows = stored(&api).await;
    assert_eq!(rows.len(), 2);
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE role = 'partner'")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    let first = &rows[0];
    let text = |row: &sqlx::postgres::PgRow, c: &str| row.get::<Option<String>, _>(c);
    assert_eq!(
        text(first, "dedupe_key").unwrap(),
        format!("receipt:{ACCOUNT}:r-1")
    );
    assert_eq!(text(first, "receipt_id").unwrap(), "r-1");
    assert_eq!(text(first, "account_id").unwrap(), ACCOUNT);
    assert_eq!(text(first, "endpoint").unwrap(), "receipt");
    assert_eq!(text(first, "outcome").unwrap(), "reported");
    assert_eq!(
        text(first, "submitted_by").unwrap(),
        format!("api-key:{key_id}")
    );
    assert_eq!(text(first, "invoice_number").unwrap(), "INV-77");
    assert_eq!(text(first, "currency").unwrap(), "CAD");
    assert_eq!(text(first, "api_token_lookup"), None);
    assert_eq!(
        first.get::<Option<i64>, _>("transaction_id"),
        Some(25_745_757)
    );
    assert_eq!(first.get::<Option<i64>, _>("amount_minor"), Some(10_099));
    assert!(first.get::<bool, _>("partner_token_sent"));
    assert!(!first.get::<bool, _>("partner_token_added"));
    assert_eq!(
        first.get::<Option<i16>, _>("is_valid_partner_token"),
        Some(1)
    );
    assert_eq!(first.get::<Option<i16>, _>("response_status"), None);
    let observed: DateTime<Utc> = first.get("observed_at");
    assert_eq!(
        observed,
        Utc.with_ymd_and_hms(2026, 11, 1, 16, 0, 0).unwrap()
            + chrono::TimeDelta::microseconds(123_456),
        "the offset is applied and microseconds kept"
    );

    let second = &rows[1];
    assert_eq!(second.get::<Option<i64>, _>("transaction_id"), None);
    assert_eq!(second.get::<Option<i64>, _>("amount_minor"), Some(500));
    assert_eq!(text(second, "currency").unwrap(), "USD");
    assert!(!second.get::<bool, _>("partner_token_sent"));
    assert_eq!(second.get::<Option<i16>, _>("is_valid_partner_token"), None);

    // An admin key covers every account.
    let admin = api.key(Role::Admin, None).await;
    let (status, body) = post_batch(&api, &admin, &[receipt("r-1", OTHER_ACCOUNT)]).await;
    assert_eq!(
        (status.as_u16(), body["stored"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(evidence_rows(&api).await, 3);
    api.stop().await;
}

#[tokio::test]
async fn the_same_batch_sent_again_stores_nothing_and_counts_it_already_recorded() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let batch = receipts(3);
    let (status, body) = post_batch(&api, &partner, &batch).await;
    assert_eq!(status, 200, "{body}");
    let before: Vec<i64> = stored(&api).await.iter().map(|r| r.get("id")).collect();

    // Sent again, by another key of the account, with the same instant at another offset
    // and the transaction id as a number: the same receipts.
    let other_key = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let mut again = batch.clone();
    again[0]["observedAt"] = json!("2026-11-01T16:00:00.123456Z");
    again[1]["transactionId"] = json!(25_745_757);
    let (status, body) = post_batch(&api, &other_key, &again).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"received": 3, "stored": 0, "alreadyRecorded": 3})
    );
    let after: Vec<i64> = stored(&api).await.iter().map(|r| r.get("id")).collect();
    assert_eq!(before, after, "no row added or replaced");

    // Old and new together: only the new one is written.
    let mut mixed = receipts(4);
    mixed.rotate_left(1);
    let (status, body) = post_batch(&api, &partner, &mixed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"received": 4, "stored": 1, "alreadyRecorded": 3})
    );
    assert_eq!(evidence_rows(&api).await, 4);
    api.stop().await;
}

#[tokio::test]
async fn identical_batches_sent_at_once_store_exactly_one_set_of_rows() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    const SENDERS: usize = 6;
    const SIZE: usize = 300;
    let batch = receipts(SIZE);
    let mut reversed = batch.clone();
    reversed.reverse();
    // Half send the receipts in the other order: locks taken in key order, not in the
    // order sent, so overlapping batches wait for each other instead of deadlocking.
    let answers = futures::future::join_all((0..SENDERS).map(|i| {
        let items = if i % 2 == 0 { &batch } else { &reversed };
        post_batch(&api, &partner, items)
    }))
    .await;
    let mut stored_total = 0;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["received"], SIZE);
        let (new, old) = (
            body["stored"].as_u64().unwrap(),
            body["alreadyRecorded"].as_u64().unwrap(),
        );
        assert_eq!(new + old, SIZE as u64, "{body}");
        stored_total += new;
    }
    assert_eq!(stored_total, SIZE as u64, "{answers:?}");
    assert_eq!(evidence_rows(&api).await, SIZE as i64);
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT receipt_id) FROM attribution_evidence")
            .fetch_one(&api.db.pool)
            .await
            .unwrap();
    assert_eq!(distinct, SIZE as i64);
    api.stop().await;
}

#[tokio::test]
async fn a_full_batch_of_1000_is_stored_in_one_go() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let admin = api.key(Role::Admin, None).await;
    let (status, body) = post_batch(&api, &admin, &receipts(1_000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], 1_000);
    assert_eq!(evidence_rows(&api).await, 1_000);
    api.stop().await;
}

#[tokio::test]
async fn receipts_are_counted_in_the_metrics() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let before = scrape(&api).await;
    let (status, _) = post_batch(&api, &partner, &receipts(3)).await;
    assert_eq!(status, 200);
    let (status, _) = post_batch(&api, &partner, &receipts(3)).await;
    assert_eq!(status, 200);
    let (status, _) = post_batch(&api, &partner, &[json!({"receiptId": "bad"})]).await;
    assert_eq!(status, 422);
    let after = scrape(&api).await;
    // Other tests in this process count too: at least what this one did.
    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert!(
        grew("recon_api_receipts_total{result=\"stored\"}") >= 3.0,
        "{after}"
    );
    assert!(
        grew("recon_api_receipts_total{result=\"already_recorded\"}") >= 3.0,
        "{after}"
    );
    assert!(
        grew("recon_api_receipts_total{result=\"rejected\"}") >= 1.0,
        "{after}"
    );
    assert!(
        grew("recon_api_receipt_batches_total{outcome=\"stored\"}") >= 2.0,
        "{after}"
    );
    assert!(
        grew("recon_api_receipt_batches_total{outcome=\"invalid\"}") >= 1.0,
        "{after}"
    );
    api.stop().await;
}

async fn scrape(api: &Harness) -> String {
    api.get("/metrics", None).await.text().await.unwrap()
}

/// A series' value in Prometheus text, 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
