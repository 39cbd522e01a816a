//! The journal's rules as the database enforces them, with plain SQL (no application
//! code in the way): an unbalanced entry, an entry of one line, a correction that is
//! not the exact reversal, and any UPDATE, DELETE or TRUNCATE are refused.

use recon_store::testing::TestDatabase;
use sqlx::PgPool;

/// Runs the statements in one transaction and commits; the error, if any.
async fn run(pool: &PgPool, statements: &[&'static str]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for statement in statements {
        sqlx::raw_sql(*statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn message(error: sqlx::Error) -> String {
    error
        .as_database_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| error.to_string())
}

const SALE: &[&str] = &[
    "INSERT INTO journal_entries (id, account_id, kind, transaction_id, effective_at, memo)
     OVERRIDING SYSTEM VALUE VALUES (1, 'acct', 'sale', 10, now(), 'sale')",
    "INSERT INTO journal_lines VALUES (1, 1, 'card_clearing', 'CAD', 1000)",
    "INSERT INTO journal_lines VALUES (1, 2, 'sales', 'CAD', -1000)",
];

async fn entries(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM journal_entries")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_balanced_entry_goes_in_and_an_unbalanced_one_is_refused_at_commit() {
    let db = TestDatabase::create().await;
    run(&db.pool, SALE)
        .await
        .expect("a balanced entry is accepted");
    let error = run(
        &db.pool,
        &[
            "INSERT INTO journal_entries (id, account_id, kind, transaction_id, effective_at, memo)
             OVERRIDING SYSTEM VALUE VALUES (2, 'acct', 'sale', 11, now(), 'off by a cent')",
            "INSERT INTO journal_lines VALUES (2, 1, 'card_clearing', 'CAD', 1000)",
            "INSERT INTO journal_lines VALUES (2, 2, 'sales', 'CAD', -999)",
        ],
    )
    .await
    .unwrap_err();
    assert!(message(error).contains("does not balance"));
    // Balanced in sum but across two currencies is not balanced either.
    let error = run(
        &db.pool,
        &[
            "INSERT INTO journal_entries (id, account_id, kind, transaction_id, effective_at, memo)
             OVERRIDING SYSTEM VALUE VALUES (3, 'acct', 'sale', 12, now(), 'two currencies')",
            "INSERT INTO journal_lines VALUES (3, 1, 'card_clearing', 'CAD', 1000)",
            "INSERT INTO journal_lines VALUES (3, 2, 'sales', 'USD', -1000)",
        ],
    )
    .await
    .unwrap_err();
    assert!(message(error).contains("does not balance"));
    let error = run(
        &db.pool,
        &[
            "INSERT INTO journal_entries (id, account_id, kind, transaction_id, effective_at, memo)
           OVERRIDING SYSTEM VALUE VALUES (4, 'acct', 'sale', 13, now(), 'no lines')",
        ],
    )
    .await
    .unwrap_err();
    assert!(message(error).contains("needs at least two"));
    assert_eq!(entries(&db.pool).await, 1, "only the balanced entry stayed");
    db.drop_now().await;
}

#[tokio::test]
async fn a_correction_must_be_the_exact_reversal_of_its_entry() {
    let db = TestDatabase::create().await;
    run(&db.pool, SALE).await.unwrap();
    for (why, lines) in [
        (
            "a different amount",
            [
                "INSERT INTO journal_lines VALUES (5, 1, 'card_clearing', 'CAD', -900)",
                "INSERT INTO journal_lines VALUES (5, 2, 'sales', 'CAD', 900)",
            ],
        ),
        (
            "the same signs",
            [
                "INSERT INTO journal_lines VALUES (5, 1, 'card_clearing', 'CAD', 1000)",
                "INSERT INTO journal_lines VALUES (5, 2, 'sales', 'CAD', -1000)",
            ],
        ),
        (
            "other accounts",
            [
                "INSERT INTO journal_lines VALUES (5, 1, 'refunds', 'CAD', -1000)",
                "INSERT INTO journal_lines VALUES (5, 2, 'sales', 'CAD', 1000)",
            ],
        ),
    ] {
        let error = run(
            &db.pool,
            &[
                "INSERT INTO journal_entries (id, account_id, kind, reverses_entry_id, effective_at, memo)
                 OVERRIDING SYSTEM VALUE VALUES (5, 'acct', 'correction', 1, now(), 'wrong')",
                lines[0],
                lines[1],
            ],
        )
        .await
        .unwrap_err();
        assert!(
            message(error).contains("not its exact reversal"),
            "{why} was accepted"
        );
    }
    let error = run(
        &db.pool,
        &[
            "INSERT INTO journal_entries (id, account_id, kind, reverses_entry_id, effective_at, memo)
             OVERRIDING SYSTEM VALUE VALUES (5, 'other-acct', 'correction', 1, now(), 'not mine')",
            "INSERT INTO journal_lines VALUES (5, 1, 'card_clearing', 'CAD', -1000)",
            "INSERT INTO journal_lines VALUES (5, 2, 'sales', 'CAD', 1000)",
        ],
    )
    .await
    .unwrap_err();
    assert!(message(error).contains("another account"));
    let exact = [
        "INSERT INTO journal_entries (id, account_id, kind, reverses_entry_id, effective_at, memo)
         OVERRIDING SYSTEM VALUE VALUES (6, 'acct', 'correction', 1, now(), 'exact')",
        "INSERT INTO journal_lines VALUES (6, 1, 'sales', 'CAD', 1000)",
        "INSERT INTO journal_lines VALUES (6, 2, 'card_clearing', 'CAD', -1000)",
    ];
    run(&db.pool, &exact)
        .await
        .expect("the exact reversal, in any line order, is accepted");
    // An entry is reversed at most once.
    let again = [
        "INSERT INTO journal_entries (id, account_id, kind, reverses_entry_id, effective_at, memo)
         OVERRIDING SYSTEM VALUE VALUES (7, 'acct', 'correction', 1, now(), 'twice')",
        "INSERT INTO journal_lines VALUES (7, 1, 'sales', 'CAD', 1000)",
        "INSERT INTO journal_lines VALUES (7, 2, 'card_clearing', 'CAD', -1000)",
    ];
    assert!(run(&db.pool, &again).await.is_err());
    assert_eq!(entries(&db.pool).await, 2);
    db.drop_now().await;
}

#[tokio::test]
async fn nothing_in_the_journal_is_updated_deleted_or_truncated() {
    let db = TestDatabase::create().await;
    run(&db.pool, SALE).await.unwrap();
    for statement in [
        "UPDATE journal_entries SET memo = 'changed' WHERE id = 1",
        "UPDATE journal_lines SET amount_minor = 2000 WHERE entry_id = 1 AND line_no = 1",
        "DELETE FROM journal_lines WHERE entry_id = 1",
        "DELETE FROM journal_entries WHERE id = 1",
        "TRUNCATE journal_lines",
        "TRUNCATE journal_entries CASCADE",
        "TRUNCATE journal_lines, journal_entries",
    ] {
        let error = run(&db.pool, &[statement]).await.unwrap_err();
        assert!(
            message(error).contains("append-only"),
            "{statement} was not refused"
        );
    }
    let (memo, total): (String, i64) = sqlx::query_as(
        "SELECT e.memo, sum(abs(l.amount_minor))::bigint FROM journal_entries e
         JOIN journal_lines l ON l.entry_id = e.id GROUP BY e.memo",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((memo.as_str(), total), ("sale", 2000));
    db.drop_now().await;
}
