//! Receipts filed against a real Postgres: one transaction per batch, content compared,
//! nothing ever overwritten.

use chrono::{TimeZone, Utc};
use recon_store::receipts::{Conflict, Filed, Receipt, ReceiptStore};
use recon_store::testing::TestDatabase;

fn receipt(id: &str) -> Receipt {
    Receipt {
        account_id: "acct-a".into(),
        receipt_id: id.into(),
        transaction_id: Some(4242),
        invoice_number: Some("INV-1".into()),
        amount_minor: 1_050,
        currency: "CAD".into(),
        partner_token_sent: true,
        is_valid_partner_token: Some(1),
        observed_at: Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap(),
    }
}

async fn count(db: &TestDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM attribution_evidence")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_filed_twice_is_one_set_of_rows_and_the_second_counts_as_already_recorded() {
    let db = TestDatabase::create().await;
    let store = ReceiptStore::new(db.pool.clone());
    let batch = vec![receipt("r-1"), receipt("r-2")];
    assert_eq!(
        store.file(&batch, "api-key:1").await.unwrap(),
        Filed::Stored {
            stored: 2,
            already_recorded: 0
        }
    );
    let more = vec![receipt("r-2"), receipt("r-3"), receipt("r-1")];
    assert_eq!(
        store.file(&more, "api-key:2").await.unwrap(),
        Filed::Stored {
            stored: 1,
            already_recorded: 2
        }
    );
    assert_eq!(count(&db).await, 3);
    let by: String = sqlx::query_scalar(
        "SELECT submitted_by FROM attribution_evidence WHERE receipt_id = 'r-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(by, "api-key:1", "the first filing stands");
    db.drop_now().await;
}

#[tokio::test]
async fn a_changed_receipt_refuses_the_whole_batch_naming_what_differs() {
    let db = TestDatabase::create().await;
    let store = ReceiptStore::new(db.pool.clone());
    store.file(&[receipt("r-1")], "api-key:1").await.unwrap();

    let mut changed = receipt("r-1");
    changed.amount_minor = 1_051;
    changed.is_valid_partner_token = None;
    let batch = vec![receipt("r-0"), changed, receipt("r-2")];
    let expected = vec![Conflict {
        position: 1,
        fields: vec!["amount", "isValidPartnerToken"],
    }];
    assert_eq!(store.conflicts(&batch).await.unwrap(), expected);
    assert_eq!(
        store.file(&batch, "api-key:1").await.unwrap(),
        Filed::Refused(expected)
    );
    assert_eq!(count(&db).await, 1, "r-0 and r-2 rolled back with it");
    let amount: i64 = sqlx::query_scalar("SELECT amount_minor FROM attribution_evidence")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(amount, 1_050);
    db.drop_now().await;
}

#[tokio::test]
async fn the_same_receipt_id_in_two_accounts_is_two_receipts() {
    let db = TestDatabase::create().await;
    let store = ReceiptStore::new(db.pool.clone());
    let mut other = receipt("r-1");
    other.account_id = "acct-b".into();
    other.amount_minor = 99;
    let filed = store
        .file(&[receipt("r-1"), other], "api-key:1")
        .await
        .unwrap();
    assert_eq!(
        filed,
        Filed::Stored {
            stored: 2,
            already_recorded: 0
        }
    );
    sqlx::query("INSERT INTO accounts (account_id) VALUES ('acct-b')")
        .execute(&db.pool)
        .await
        .unwrap();
    let known = store
        .known_accounts(&["acct-a".into(), "acct-b".into()])
        .await
        .unwrap();
    assert_eq!(known, vec!["acct-b".to_string()]);
    db.drop_now().await;
}
