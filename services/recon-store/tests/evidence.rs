//! Attribution evidence and API-token fingerprints against a real Postgres.

use std::sync::Arc;

use chrono::Utc;
use recon_store::accounts::NewAccount;
use recon_store::evidence::{Evidence, EvidenceStore, Outcome, Recorded, Source};
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, SecretCipher};
use secrecy::SecretString;

fn evidence(key: &str, outcome: Outcome) -> Evidence {
    let answered = outcome == Outcome::Answered;
    Evidence {
        dedupe_key: key.into(),
        source: Source::Gateway,
        account_id: None,
        api_token_lookup: Some("0f".repeat(16)),
        endpoint: "payment/purchase".into(),
        idempotency_key: Some("a".repeat(30)),
        partner_token_sent: false,
        partner_token_added: true,
        is_valid_partner_token: answered.then_some(1),
        outcome,
        response_status: answered.then_some(200),
        transaction_id: answered.then_some(4242),
        invoice_number: Some("INV-1".into()),
        customer_code: None,
        amount_minor: Some(1_050),
        currency: Some("CAD".into()),
        observed_at: Utc::now(),
        receipt_id: None,
        submitted_by: None,
    }
}

async fn row(db: &TestDatabase, key: &str) -> (String, Option<i16>, Option<i64>) {
    sqlx::query_as(
        "SELECT outcome, response_status, transaction_id FROM attribution_evidence WHERE dedupe_key = $1",
    )
    .bind(key)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn recording_the_same_request_twice_keeps_one_row_and_an_answer_replaces_only_a_timeout() {
    let db = TestDatabase::create().await;
    let store = EvidenceStore::new(db.pool.clone());

    let first = store
        .record(&[
            evidence("timed-out", Outcome::Timeout),
            evidence("answered", Outcome::Answered),
        ])
        .await
        .unwrap();
    assert_eq!(
        first,
        Recorded {
            inserted: 2,
            answered_later: 0
        }
    );

    // A replay of the same records (a spool replayed after a crash) adds nothing.
    let replay = store
        .record(&[
            evidence("timed-out", Outcome::Timeout),
            evidence("answered", Outcome::Answered),
        ])
        .await
        .unwrap();
    assert_eq!(replay, Recorded::default());

    // The retry that got through replaces the timeout; a later failure never replaces
    // an answer.
    let retry = store
        .record(&[
            evidence("timed-out", Outcome::Answered),
            evidence("answered", Outcome::Unreachable),
        ])
        .await
        .unwrap();
    assert_eq!(
        retry,
        Recorded {
            inserted: 0,
            answered_later: 1
        }
    );
    assert_eq!(
        row(&db, "timed-out").await,
        ("answered".into(), Some(200), Some(4242))
    );
    assert_eq!(
        row(&db, "answered").await,
        ("answered".into(), Some(200), Some(4242))
    );

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM attribution_evidence")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
    db.drop_now().await;
}

#[tokio::test]
async fn batches_sharing_requests_in_opposite_orders_written_at_once_both_succeed() {
    // The gateway's live writer and its spool replay can carry the same requests in
    // different orders (here over several statements each); neither may fail for a
    // deadlock.
    let db = TestDatabase::create().await;
    let store = EvidenceStore::new(db.pool.clone());
    for round in 0..5 {
        let forward: Vec<Evidence> = (0..3_000)
            .map(|i| evidence(&format!("k-{round}-{i:04}"), Outcome::Timeout))
            .collect();
        let backward: Vec<Evidence> = forward
            .iter()
            .rev()
            .map(|e| evidence(&e.dedupe_key, Outcome::Answered))
            .collect();
        let (a, b) = tokio::join!(store.record(&forward), store.record(&backward));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.inserted + b.inserted, 3_000, "round {round}");
    }
    let answered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attribution_evidence WHERE outcome = 'answered'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        answered, 15_000,
        "every answer wins over its timeout, whichever came first"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn the_database_refuses_evidence_that_contradicts_itself() {
    let db = TestDatabase::create().await;
    let store = EvidenceStore::new(db.pool.clone());
    let mut no_status = evidence("bad", Outcome::Answered);
    no_status.response_status = None;
    assert!(store.record(&[no_status]).await.is_err());
    let mut both = evidence("bad", Outcome::Answered);
    both.partner_token_sent = true;
    assert!(store.record(&[both]).await.is_err());
    let mut nobody = evidence("bad", Outcome::Answered);
    nobody.api_token_lookup = None;
    assert!(store.record(&[nobody]).await.is_err());
    // All or nothing: a good record beside a bad one is not kept either.
    let mut bad = evidence("bad", Outcome::Answered);
    bad.is_valid_partner_token = Some(2);
    assert!(
        store
            .record(&[evidence("good", Outcome::Answered), bad])
            .await
            .is_err()
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM attribution_evidence")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    db.drop_now().await;
}

#[tokio::test]
async fn accounts_get_a_keyed_token_fingerprint_that_a_lookup_key_alone_reproduces() {
    let db = TestDatabase::create().await;
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let store = AccountStore::new(
        db.pool.clone(),
        Arc::new(SecretCipher::new(master.clone(), vec![])),
    );
    let token = SecretString::from("api-token-of-m1".to_string());
    store
        .add(NewAccount {
            account_id: "m1".into(),
            api_token: Some(token.clone()),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT api_token_lookup FROM accounts WHERE account_id = 'm1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let expected = master.derive_lookup().fingerprint("api-token-of-m1");
    assert_eq!(stored.as_deref(), Some(expected.as_str()));

    // A row without one (made before the column existed) gets it; a current one is left.
    sqlx::query("UPDATE accounts SET api_token_lookup = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(store.fingerprint_api_tokens().await.unwrap(), 1);
    assert_eq!(store.fingerprint_api_tokens().await.unwrap(), 0);

    // After a master-key rotation the fingerprint moves to the new lookup key.
    let next = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let rotated = AccountStore::new(
        db.pool.clone(),
        Arc::new(SecretCipher::new(next.clone(), vec![master])),
    );
    assert_eq!(rotated.fingerprint_api_tokens().await.unwrap(), 1);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT api_token_lookup FROM accounts WHERE account_id = 'm1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        Some(next.derive_lookup().fingerprint("api-token-of-m1"))
    );
    db.drop_now().await;
}

#[tokio::test]
async fn an_api_token_this_process_cannot_decrypt_does_not_stop_the_others_being_fingerprinted() {
    // E.g. a worker given the new API-token key but not yet the previous one: the
    // accounts it can read must still be found by the gateway.
    let db = TestDatabase::create().await;
    let stranger = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    for (store_key, account) in [(&stranger, "a-unreadable"), (&master, "b-readable")] {
        AccountStore::new(
            db.pool.clone(),
            Arc::new(SecretCipher::new(store_key.clone(), vec![])),
        )
        .add(NewAccount {
            account_id: account.into(),
            api_token: Some(SecretString::from(format!("token-of-{account}"))),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    }
    sqlx::query("UPDATE accounts SET api_token_lookup = NULL")
        .execute(&db.pool)
        .await
        .unwrap();
    let store = AccountStore::new(
        db.pool.clone(),
        Arc::new(SecretCipher::new(master.clone(), vec![])),
    );
    assert_eq!(store.fingerprint_api_tokens().await.unwrap(), 1);
    let lookups: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT account_id, api_token_lookup FROM accounts ORDER BY account_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        lookups,
        vec![
            ("a-unreadable".to_string(), None),
            (
                "b-readable".to_string(),
                Some(master.derive_lookup().fingerprint("token-of-b-readable"))
            ),
        ]
    );
    db.drop_now().await;
}
