//! `reconctl exceptions list|show|ack|resolve` as an operator runs them: the built
//! binary against a fresh Postgres database.

use recon_store::reconciliation::exceptions::{self, ExceptionClass, NewException};
use recon_store::testing::TestDatabase;
use serde_json::json;

mod support;

/// `reconctl exceptions <args>`.
fn reconctl(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    support::reconctl(db, &[&["exceptions"], args].concat())
}

/// Who the commands record (the binary inherits USER from this process).
fn actor() -> String {
    match std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        Some(user) => format!("reconctl:{user}"),
        None => "reconctl".to_string(),
    }
}

async fn raise(db: &TestDatabase, account: &str, class: ExceptionClass, tx: u64) -> i64 {
    let key = format!("{class}:tx:{tx}");
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(
        exceptions::raise(
            &mut conn,
            &NewException {
                account_id: account.into(),
                class,
                transaction_id: Some(tx),
                card_batch_id: Some(77),
                dedupe_key: key.clone(),
                summary: format!("transaction {tx} (12.50 CAD): look at it"),
                evidence: json!({"transactionId": tx}),
                amount_minor: Some(1_250),
                currency: Some("CAD".into()),
            },
        )
        .await
        .unwrap()
    );
    sqlx::query_scalar("SELECT id FROM reconciliation_exceptions WHERE dedupe_key = $1")
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn exceptions_are_listed_filtered_and_refused_bad_names_with_the_allowed_ones() {
    let db = TestDatabase::create().await;
    let first = raise(&db, "acct-a", ExceptionClass::AmountChanged, 1).await;
    let second = raise(&db, "acct-b", ExceptionClass::OrphanRefund, 2).await;
    let third = raise(&db, "acct-a", ExceptionClass::OrphanRefund, 3).await;

    let (ok, out) = reconctl(&db, &["list"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("id\taccount\tclass\tstatus"), "{out}");
    assert!(
        lines[1].starts_with(&format!(
            "{third}\tacct-a\torphan_refund\topen\t3\t77\t12.50\tCAD\t"
        )),
        "{out}"
    );
    assert!(
        lines[1].ends_with("transaction 3 (12.50 CAD): look at it"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"3 exceptions"), "{out}");

    let (ok, out) = reconctl(
        &db,
        &["list", "--account", "acct-a", "--class", "orphan_refund"],
    );
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains(&format!("\n{third}\t")), "{out}");

    let (ok, out) = reconctl(&db, &["list", "--limit", "2"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("--after {second}")), "{out}");
    let (ok, out) = reconctl(&db, &["list", "--after", &second.to_string(), "--json"]);
    assert!(ok, "{out}");
    let page: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(page["exceptions"][0]["id"], first);
    assert_eq!(page["exceptions"][0]["class"], "amount_changed");
    assert_eq!(page["exceptions"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["nextAfterId"], serde_json::Value::Null);

    let (ok, out) = reconctl(&db, &["list", "--class", "missed"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("missed_webhook") && out.contains("unknown_status"),
        "{out}"
    );
    let (ok, out) = reconctl(&db, &["list", "--status", "closed"]);
    assert!(!ok, "{out}");
    assert!(out.contains("open, acknowledged, resolved"), "{out}");
    db.drop_now().await;
}

#[tokio::test]
async fn an_operator_acknowledges_then_resolves_with_a_note_and_show_prints_the_trail() {
    let db = TestDatabase::create().await;
    let id = raise(&db, "acct-a", ExceptionClass::DuplicateSuspect, 9).await;
    let id_text = id.to_string();

    let (ok, out) = reconctl(&db, &["ack", &id_text, "--note", "calling the customer"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("exception {id} is now acknowledged")),
        "{out}"
    );
    let (ok, out) = reconctl(&db, &["ack", &id_text]);
    assert!(!ok, "{out}");
    assert!(out.contains("already acknowledged"), "{out}");

    // A resolution needs a note: missing, or blank.
    let (ok, out) = reconctl(&db, &["resolve", &id_text]);
    assert!(!ok, "{out}");
    assert!(out.contains("--note"), "{out}");
    let (ok, out) = reconctl(&db, &["resolve", &id_text, "--note", "  "]);
    assert!(!ok, "{out}");
    assert!(out.contains("a note is required"), "{out}");

    let (ok, out) = reconctl(
        &db,
        &["resolve", &id_text, "--note", "second charge refunded"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("is now resolved"), "{out}");
    let (ok, out) = reconctl(&db, &["resolve", &id_text, "--note", "again"]);
    assert!(!ok, "{out}");
    assert!(out.contains("already resolved"), "{out}");
    let (ok, out) = reconctl(&db, &["ack", "424242"]);
    assert!(!ok, "{out}");
    assert!(out.contains("no exception 424242"), "{out}");

    let (ok, out) = reconctl(&db, &["show", &id_text]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with(&format!("exception {id} (duplicate_suspect, resolved)")),
        "{out}"
    );
    assert!(out.contains("resolution   person"), "{out}");
    let trail: Vec<&str> = out
        .split("audit trail:\n")
        .nth(1)
        .expect("a trail")
        .lines()
        .collect();
    assert_eq!(trail.len(), 3, "{out}");
    assert!(trail[0].contains("\tsystem\traised\t- -> open"), "{out}");
    assert!(
        trail[1].contains(&format!(
            "\t{}\tacknowledged\topen -> acknowledged\tcalling the customer",
            actor()
        )),
        "{out}"
    );
    assert!(
        trail[2].contains(&format!(
            "\t{}\tresolved\tacknowledged -> resolved\tsecond charge refunded",
            actor()
        )),
        "{out}"
    );

    let (ok, out) = reconctl(&db, &["show", &id_text, "--json"]);
    assert!(ok, "{out}");
    let shown: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(shown["exception"]["resolvedBy"], actor());
    assert_eq!(shown["events"].as_array().map(Vec::len), Some(3));
    db.drop_now().await;
}
