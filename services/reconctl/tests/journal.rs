//! `reconctl journal balances|entries` as an operator runs them: the built binary
//! against a fresh database whose transactions were written with SQL and posted as
//! the record hook posts them.

mod support;

use recon_store::reconciliation::journal;
use recon_store::testing::TestDatabase;
use support::reconctl;

const ACCOUNT: &str = "acct-books";

/// Writes (or changes) an approved transaction of batch 5, then posts it.
async fn record(db: &TestDatabase, id: i64, kind: &str, amount_minor: i64) {
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, card_batch_id, created_at,
             status, type, amount_minor, currency, card_token, invoice_number, raw, fetched_at,
             reconciliation_status)
         VALUES ($1, $2, 5, now(), 'APPROVED', $3, $4, 'CAD', 'tok', 'INV', '{}'::json, now(), 'matched')
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET amount_minor = EXCLUDED.amount_minor",
    )
    .bind(ACCOUNT)
    .bind(id)
    .bind(kind)
    .bind(amount_minor)
    .execute(&mut *tx)
    .await
    .unwrap();
    journal::post_transaction(&mut tx, ACCOUNT, id as u64)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn books() -> TestDatabase {
    let db = TestDatabase::create().await;
    sqlx::query("INSERT INTO accounts (account_id) VALUES ($1)")
        .bind(ACCOUNT)
        .execute(&db.pool)
        .await
        .unwrap();
    record(&db, 1, "purchase", 2_500).await;
    record(&db, 2, "refund", 400).await;
    db
}

#[tokio::test]
async fn balances_print_per_account_and_currency_as_a_table_or_json() {
    let db = books().await;
    let (ok, out) = reconctl(&db, &["journal", "balances", "--account", ACCOUNT]);
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "account\tcurrency\tbalance\tbalance_minor\n\
         card_clearing\tCAD\t21.00\t2100\n\
         sales\tCAD\t-25.00\t-2500\n\
         refunds\tCAD\t4.00\t400\n"
    );
    let (ok, out) = reconctl(
        &db,
        &["journal", "balances", "--account", ACCOUNT, "--json"],
    );
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        json[0],
        serde_json::json!({"account": "card_clearing", "currency": "CAD", "balance_minor": 2100})
    );
    assert_eq!(json.as_array().unwrap().len(), 3);
    // Before anything was posted, the books were empty.
    let (ok, out) = reconctl(
        &db,
        &[
            "journal",
            "balances",
            "--account",
            ACCOUNT,
            "--at",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(out, "no journal entries\n");
    let (ok, out) = reconctl(&db, &["journal", "balances", "--account", "nobody"]);
    assert!(!ok && out.contains("no account \"nobody\""), "{out}");
    let (ok, out) = reconctl(
        &db,
        &[
            "journal",
            "balances",
            "--account",
            ACCOUNT,
            "--at",
            "yesterday",
        ],
    );
    assert!(!ok && out.contains("--at"), "{out}");
    db.drop_now().await;
}

#[tokio::test]
async fn entries_print_with_their_lines_and_page_by_id() {
    let db = books().await;
    record(&db, 1, "purchase", 3_000).await;
    let (ok, out) = reconctl(&db, &["journal", "entries", "--account", ACCOUNT, "--json"]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sale", "refund", "correction", "sale"]);
    assert_eq!(json[2]["reverses_entry_id"], json[0]["id"]);
    assert_eq!(
        json[3]["lines"],
        serde_json::json!([
            {"account": "card_clearing", "currency": "CAD", "amount_minor": 3000},
            {"account": "sales", "currency": "CAD", "amount_minor": -3000},
        ])
    );
    let first = json[0]["id"].as_i64().unwrap().to_string();
    let (ok, out) = reconctl(
        &db,
        &[
            "journal",
            "entries",
            "--account",
            ACCOUNT,
            "--after",
            &first,
            "--limit",
            "1",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!(
            "entry {}\trefund\ttransaction 2\tbatch 5",
            json[1]["id"]
        )),
        "{out}"
    );
    assert!(
        out.contains("Refund: approved refund 2 of 4.00 CAD"),
        "{out}"
    );
    // Debit and credit columns.
    assert!(
        out.contains(&format!(
            "  {:<22}{:>14}{:>14} CAD\n",
            "refunds", "4.00", ""
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  {:<22}{:>14}{:>14} CAD\n",
            "card_clearing", "", "4.00"
        )),
        "{out}"
    );
    assert!(!out.contains("correction"), "{out}");
    let (ok, out) = reconctl(
        &db,
        &["journal", "entries", "--account", ACCOUNT, "--limit", "0"],
    );
    assert!(!ok, "{out}");
    db.drop_now().await;
}
