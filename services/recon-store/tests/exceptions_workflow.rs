//! The exception workflow against a real Postgres: one row per cause, acknowledge and
//! resolve with their refusals, a person's resolution is final, a cleared one reopens,
//! the audit trail refuses changes, and the listing's filters and pages.

use recon_reconcile::{ExceptionClass, ExceptionStatus};
use recon_store::reconciliation::exceptions::{
    self, ActionError, ExceptionFilter, NewException, Resolution,
};
use recon_store::testing::TestDatabase;
use serde_json::json;

fn new(account: &str, class: ExceptionClass, key: &str, tx: u64) -> NewException {
    NewException {
        account_id: account.into(),
        class,
        transaction_id: Some(tx),
        card_batch_id: Some(7),
        dedupe_key: key.into(),
        summary: format!("transaction {tx}: something to look at"),
        evidence: json!({"transactionId": tx}),
        amount_minor: Some(1_000),
        currency: Some("CAD".into()),
    }
}

async fn raise(db: &TestDatabase, exception: &NewException) -> bool {
    let mut conn = db.pool.acquire().await.unwrap();
    exceptions::raise(&mut conn, exception).await.unwrap()
}

async fn clear(db: &TestDatabase, account: &str, key: &str) -> bool {
    let mut conn = db.pool.acquire().await.unwrap();
    exceptions::clear(&mut conn, account, key, "the cause went away")
        .await
        .unwrap()
}

async fn id_of(db: &TestDatabase, key: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM reconciliation_exceptions WHERE dedupe_key = $1")
        .bind(key)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn trail(db: &TestDatabase, id: i64) -> Vec<(String, String, Option<String>)> {
    let (_, events) = exceptions::get(&db.pool, id).await.unwrap().unwrap();
    events
        .into_iter()
        .map(|e| (e.action, e.actor, e.note))
        .collect()
}

fn actions(trail: &[(String, String, Option<String>)]) -> Vec<&str> {
    trail.iter().map(|(a, _, _)| a.as_str()).collect()
}

#[tokio::test]
async fn raising_the_same_cause_twice_keeps_one_row_and_one_event() {
    let db = TestDatabase::create().await;
    let key = "amount_changed:tx:1:100->200";
    assert!(raise(&db, &new("a", ExceptionClass::AmountChanged, key, 1)).await);
    assert!(!raise(&db, &new("a", ExceptionClass::AmountChanged, key, 1)).await);
    // The same key in another account is another exception.
    assert!(raise(&db, &new("b", ExceptionClass::AmountChanged, key, 1)).await);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM reconciliation_exceptions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM reconciliation_exceptions WHERE account_id = 'a' AND dedupe_key = $1",
    )
    .bind(key)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (exception, _) = exceptions::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(exception.status, ExceptionStatus::Open);
    assert_eq!(
        trail(&db, id).await,
        [("raised".to_string(), "system".to_string(), None)]
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_person_acknowledges_then_resolves_with_a_note_and_that_is_final() {
    let db = TestDatabase::create().await;
    let key = "orphan_refund:tx:5";
    let exception = new("a", ExceptionClass::OrphanRefund, key, 5);
    raise(&db, &exception).await;
    let id = id_of(&db, key).await;

    let seen = exceptions::acknowledge(&db.pool, id, "reconctl:ana", None)
        .await
        .unwrap();
    assert_eq!(seen.status, ExceptionStatus::Acknowledged);
    assert_eq!(seen.acknowledged_by.as_deref(), Some("reconctl:ana"));
    let again = exceptions::acknowledge(&db.pool, id, "reconctl:ana", None).await;
    assert!(
        matches!(&again, Err(ActionError::Refused { .. })),
        "{again:?}"
    );
    assert!(
        again
            .unwrap_err()
            .to_string()
            .contains("already acknowledged")
    );

    for blank in ["", "   "] {
        let refused = exceptions::resolve(&db.pool, id, "reconctl:ana", blank).await;
        assert!(matches!(refused, Err(ActionError::Note(_))), "{refused:?}");
    }
    let done = exceptions::resolve(&db.pool, id, "reconctl:ana", "refunded by phone, see CS-12")
        .await
        .unwrap();
    assert_eq!(done.status, ExceptionStatus::Resolved);
    assert_eq!(done.resolution, Some(Resolution::Person));
    assert_eq!(done.resolved_by.as_deref(), Some("reconctl:ana"));
    assert_eq!(done.note.as_deref(), Some("refunded by phone, see CS-12"));

    let twice = exceptions::resolve(&db.pool, id, "reconctl:bo", "again").await;
    assert!(twice.unwrap_err().to_string().contains("already resolved"));
    assert!(
        exceptions::acknowledge(&db.pool, id, "x", None)
            .await
            .is_err()
    );

    // The next sweep sees the same cause: the person's resolution stands.
    assert!(!raise(&db, &exception).await);
    // Nor does the system clear what a person resolved.
    assert!(!clear(&db, "a", key).await);
    let (after, _) = exceptions::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(after.status, ExceptionStatus::Resolved);
    assert_eq!(after.resolution, Some(Resolution::Person));

    let events = trail(&db, id).await;
    assert_eq!(actions(&events), ["raised", "acknowledged", "resolved"]);
    assert_eq!(events[2].1, "reconctl:ana");
    assert_eq!(events[2].2.as_deref(), Some("refunded by phone, see CS-12"));

    let missing = exceptions::acknowledge(&db.pool, 9_999, "x", None).await;
    assert!(matches!(missing, Err(ActionError::NotFound(9_999))));
    db.drop_now().await;
}

#[tokio::test]
async fn a_cleared_exception_reopens_when_its_cause_comes_back() {
    let db = TestDatabase::create().await;
    let key = "missing_in_api:tx:8";
    let mut exception = new("a", ExceptionClass::MissingInApi, key, 8);
    raise(&db, &exception).await;
    let id = id_of(&db, key).await;
    exceptions::acknowledge(&db.pool, id, "reconctl:ana", Some("looking"))
        .await
        .unwrap();
    assert!(clear(&db, "a", key).await);
    assert!(!clear(&db, "a", key).await, "already cleared");
    let (cleared, _) = exceptions::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(cleared.status, ExceptionStatus::Resolved);
    assert_eq!(cleared.resolution, Some(Resolution::Cleared));
    assert_eq!(cleared.resolved_by.as_deref(), Some("system"));
    assert_eq!(cleared.note.as_deref(), Some("the cause went away"));

    exception.summary = "transaction 8 vanished again".into();
    assert!(raise(&db, &exception).await);
    let (reopened, _) = exceptions::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(reopened.status, ExceptionStatus::Open);
    assert_eq!(reopened.resolution, None);
    assert_eq!(reopened.resolved_at, None);
    assert_eq!(reopened.acknowledged_by, None);
    assert_eq!(reopened.summary, "transaction 8 vanished again");
    assert_eq!(
        actions(&trail(&db, id).await),
        ["raised", "acknowledged", "cleared", "reopened"]
    );
    // Open again: raising once more changes nothing.
    assert!(!raise(&db, &exception).await);
    db.drop_now().await;
}

#[tokio::test]
async fn clear_matching_clears_the_old_causes_of_a_batch_and_keeps_the_current_one() {
    let db = TestDatabase::create().await;
    let old = "batch_mismatch:batch:42:500:3";
    let current = "batch_mismatch:batch:42:700:4";
    let other_batch = "batch_mismatch:batch:420:500:3";
    for key in [old, current, other_batch] {
        raise(&db, &new("a", ExceptionClass::BatchMismatch, key, 1)).await;
    }
    // A look-alike key in which `_` would match anything under LIKE.
    raise(
        &db,
        &new(
            "a",
            ExceptionClass::BatchMismatch,
            "batchXmismatch:batch:42:1:1",
            1,
        ),
    )
    .await;
    let mut conn = db.pool.acquire().await.unwrap();
    let cleared = exceptions::clear_matching(
        &mut conn,
        "a",
        "batch_mismatch:batch:42:",
        Some(current),
        "the difference changed",
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(cleared, 1);
    let status = |key: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT status FROM reconciliation_exceptions WHERE dedupe_key = $1",
            )
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(status(old).await, "resolved");
    assert_eq!(status(current).await, "open");
    assert_eq!(status(other_batch).await, "open");
    assert_eq!(status("batchXmismatch:batch:42:1:1").await, "open");

    // Balanced later: no key to keep, every one of the batch clears.
    let mut conn = db.pool.acquire().await.unwrap();
    let cleared =
        exceptions::clear_matching(&mut conn, "a", "batch_mismatch:batch:42:", None, "balanced")
            .await
            .unwrap();
    drop(conn);
    assert_eq!(cleared, 1);
    db.drop_now().await;
}

#[tokio::test]
async fn the_audit_trail_refuses_update_and_delete() {
    let db = TestDatabase::create().await;
    raise(
        &db,
        &new(
            "a",
            ExceptionClass::DuplicateSuspect,
            "duplicate_suspect:tx:3",
            3,
        ),
    )
    .await;
    for statement in [
        "UPDATE reconciliation_exception_events SET actor = 'someone else'",
        "DELETE FROM reconciliation_exception_events",
    ] {
        let error = sqlx::query(statement)
            .execute(&db.pool)
            .await
            .expect_err(statement);
        assert!(error.to_string().contains("audit trail"), "{error}");
    }
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM reconciliation_exception_events")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(actors, ["system"]);
    db.drop_now().await;
}

#[tokio::test]
async fn the_listing_filters_and_pages_newest_first() {
    let db = TestDatabase::create().await;
    for tx in 1..=5 {
        let class = if tx % 2 == 0 {
            ExceptionClass::AmountChanged
        } else {
            ExceptionClass::UnknownStatus
        };
        raise(&db, &new("a", class, &format!("k:tx:{tx}"), tx)).await;
    }
    raise(&db, &new("b", ExceptionClass::AmountChanged, "k:tx:6", 6)).await;
    let first = id_of(&db, "k:tx:1").await;
    exceptions::resolve(&db.pool, first, "p", "fine")
        .await
        .unwrap();

    let list = |filter: ExceptionFilter, after: Option<i64>, limit: u32| {
        let pool = db.pool.clone();
        async move {
            let page = exceptions::list(&pool, &filter, after, limit)
                .await
                .unwrap();
            let txs: Vec<i64> = page
                .exceptions
                .iter()
                .map(|e| e.transaction_id.unwrap())
                .collect();
            (txs, page.next_after_id)
        }
    };
    let (txs, next) = list(ExceptionFilter::default(), None, 4).await;
    assert_eq!(txs, [6, 5, 4, 3]);
    let (txs, last) = list(ExceptionFilter::default(), next, 4).await;
    assert_eq!((txs, last), (vec![2, 1], None));

    let only_a = ExceptionFilter {
        accounts: Some(vec!["a".into()]),
        class: Some(ExceptionClass::AmountChanged),
        ..ExceptionFilter::default()
    };
    assert_eq!(list(only_a, None, 100).await.0, [4, 2]);
    let open = ExceptionFilter {
        account: Some("a".into()),
        status: Some(ExceptionStatus::Open),
        ..ExceptionFilter::default()
    };
    assert_eq!(list(open, None, 100).await.0, [5, 4, 3, 2]);
    let one = ExceptionFilter {
        transaction_id: Some(3),
        card_batch_id: Some(7),
        ..ExceptionFilter::default()
    };
    assert_eq!(list(one, None, 100).await.0, [3]);
    let none_in_scope = ExceptionFilter {
        accounts: Some(vec![]),
        ..ExceptionFilter::default()
    };
    assert!(list(none_in_scope, None, 100).await.0.is_empty());
    db.drop_now().await;
}
