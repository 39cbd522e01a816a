//! `reconctl attribution ...` and `reconctl accounts set-share` as an operator runs
//! them: the built binary against a fresh database, rows written by SQL as the
//! engine and the close would leave them.

use std::process::Command;

use chrono::Utc;
use recon_attribution::{CloseCalendar, Month};
use recon_store::testing::TestDatabase;
use recon_store::testing::attribution::report_document;

fn reconctl(db: &TestDatabase, args: &[&str]) -> (bool, String, Vec<u8>) {
    let output = Command::new(env!("CARGO_BIN_EXE_reconctl"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "error")
        .env("USER", "dana")
        .env_remove("RECON_CLOSE_TIMEZONE")
        .env_remove("RECON_CLOCK_OFFSET_FILE")
        .output()
        .expect("reconctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text, output.stdout)
}

/// `reconctl attribution <action> --gap <gap> --note <note>`: (success, output).
fn gap_action(db: &TestDatabase, action: &str, gap: i64, note: &str) -> (bool, String) {
    let (ok, text, _) = reconctl(
        db,
        &[
            "attribution",
            action,
            "--gap",
            &gap.to_string(),
            "--note",
            note,
        ],
    );
    (ok, text)
}

/// `reconctl accounts set-share --account <account> --bps <bps>`: (success, output).
fn set_share(db: &TestDatabase, account: &str, bps: &str) -> (bool, String) {
    let (ok, text, _) = reconctl(
        db,
        &["accounts", "set-share", "--account", account, "--bps", bps],
    );
    (ok, text)
}

fn this_month() -> Month {
    CloseCalendar::default().month_of(Utc::now())
}

async fn account(db: &TestDatabase, id: &str, bps: Option<i32>) {
    sqlx::query("INSERT INTO accounts (account_id, revenue_share_bps) VALUES ($1, $2)")
        .bind(id)
        .bind(bps)
        .execute(&db.pool)
        .await
        .unwrap();
}

async fn gap(
    db: &TestDatabase,
    account: &str,
    tx: i64,
    class: &str,
    amount: i64,
    month: Month,
) -> i64 {
    recon_store::testing::attribution::gap(&db.pool, account, tx, class, amount, month, "open")
        .await
}

async fn share(db: &TestDatabase, id: &str) -> Option<i32> {
    sqlx::query_scalar("SELECT revenue_share_bps FROM accounts WHERE account_id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_share_rate_is_set_checked_and_cleared() {
    let db = TestDatabase::create().await;
    account(&db, "acct-a", None).await;
    let (ok, text) = set_share(&db, "acct-a", "250");
    assert!(ok && text.contains("250 basis points (2.50 %)"), "{text}");
    assert_eq!(share(&db, "acct-a").await, Some(250));
    let (ok, text) = set_share(&db, "acct-a", "10001");
    assert!(!ok && text.contains("10000"), "{text}");
    let (ok, text, _) = reconctl(&db, &["accounts", "set-share", "--account", "acct-a"]);
    assert!(!ok && text.contains("--bps"), "{text}");
    let (ok, text) = set_share(&db, "nobody", "5");
    assert!(!ok && text.contains("no account \"nobody\""), "{text}");
    assert_eq!(share(&db, "acct-a").await, Some(250));
    let (ok, text, _) = reconctl(
        &db,
        &["accounts", "set-share", "--account", "acct-a", "--clear"],
    );
    assert!(ok, "{text}");
    assert_eq!(share(&db, "acct-a").await, None);
    db.drop_now().await;
}

#[tokio::test]
async fn gaps_are_listed_filtered_and_worked_with_the_operator_named() {
    let db = TestDatabase::create().await;
    let month = this_month();
    account(&db, "acct-a", Some(1_000)).await;
    let first = gap(&db, "acct-a", 1, "token_rejected", 5_000, month).await;
    let second = gap(&db, "acct-a", 2, "unattributed", 700, month).await;

    let (ok, text, _) = reconctl(&db, &["attribution", "gaps", "--limit", "1"]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("id\taccount\ttransaction\tclass"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{first}\tacct-a\t1\ttoken_rejected\t-\t50.00\tCAD\t5.00\t{month}"
        )),
        "{text}"
    );
    let cursor = lines[2].rsplit(' ').next().unwrap();
    assert!(lines[2].starts_with("1 gap shown; more"), "{text}");
    let (ok, text, _) = reconctl(
        &db,
        &["attribution", "gaps", "--limit", "1", "--cursor", cursor],
    );
    assert!(
        ok && text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{second}\t")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("1 gap"));
    let (ok, text, _) = reconctl(
        &db,
        &[
            "attribution",
            "gaps",
            "--class",
            "unattributed",
            "--cursor",
            cursor,
        ],
    );
    assert!(!ok && text.contains("other filters"), "{text}");
    let (ok, text, _) = reconctl(&db, &["attribution", "gaps", "--class", "lost"]);
    assert!(
        !ok && text.contains("token_rejected, token_missing"),
        "{text}"
    );
    let (ok, text, _) = reconctl(&db, &["attribution", "gaps", "--month", "2026-13"]);
    assert!(!ok && text.contains("out of range"), "{text}");

    let (ok, text) = gap_action(&db, "acknowledge", first, " ");
    assert!(!ok && text.contains("a note is required"), "{text}");
    let (ok, text) = gap_action(&db, "acknowledge", first, "looking");
    assert!(
        ok && text.contains("now acknowledged (by reconctl:dana)"),
        "{text}"
    );
    let (ok, text) = gap_action(&db, "acknowledge", first, "again");
    assert!(!ok && text.contains("already acknowledged"), "{text}");
    let (ok, text) = gap_action(&db, "resolve", first, "waived by finance");
    assert!(ok && text.contains("now resolved"), "{text}");
    let (ok, text, _) = reconctl(
        &db,
        &["attribution", "resolve", "--gap", "999999", "--note", "x"],
    );
    assert!(!ok && text.contains("no gap 999999"), "{text}");
    let actors: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, to_status FROM attribution_gap_events WHERE gap_id = $1 ORDER BY id",
    )
    .bind(first)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        actors,
        [
            ("reconctl:dana".to_string(), "acknowledged".to_string()),
            ("reconctl:dana".to_string(), "resolved".to_string())
        ]
    );
    let verdict: String = sqlx::query_scalar(
        "SELECT verdict FROM attribution_transactions WHERE account_id = 'acct-a' AND transaction_id = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(verdict, "waived");

    let (ok, text, _) = reconctl(&db, &["attribution", "summary"]);
    assert!(ok, "{text}");
    assert!(
        text.starts_with(&format!("attribution summary for {month}\n")),
        "{text}"
    );
    assert!(text.contains("(midnight America/Edmonton), in "), "{text}");
    assert!(text.contains("  unattributed    1 (1 open)"), "{text}");
    assert!(text.contains("gaps resolved: 1"), "{text}");
    assert!(text.contains("  CAD 7.00, share at risk 0.70"), "{text}");
    db.drop_now().await;
}

#[tokio::test]
async fn a_frozen_report_prints_its_stored_bytes_and_a_live_one_its_sums() {
    let db = TestDatabase::create().await;
    account(&db, "acct-a", None).await;
    let month = this_month();
    gap(&db, "acct-a", 1, "token_missing", 1_234, month).await;
    let (ok, _, live) = reconctl(
        &db,
        &["attribution", "report", "--month", &month.to_string()],
    );
    assert!(ok);
    let live: serde_json::Value = serde_json::from_slice(&live).unwrap();
    assert_eq!(live["frozen"], false);
    assert_eq!(live["accounts"][0]["atRiskVolume"], "12.34");

    let past = month.previous();
    sqlx::query("INSERT INTO attribution_reports (month, frozen_at) VALUES ($1, now())")
        .bind(past.first_day())
        .execute(&db.pool)
        .await
        .unwrap();
    for (scope, format, body) in [
        ("*", "json", b"{\"frozen\": true}\n ".as_slice()),
        ("*", "csv", b"month,frozen\r\n2026-10,true\r\n".as_slice()),
    ] {
        report_document(&db.pool, past, scope, format, body).await;
    }
    let (ok, _, json) = reconctl(
        &db,
        &["attribution", "report", "--month", &past.to_string()],
    );
    assert!(ok);
    assert_eq!(json, b"{\"frozen\": true}\n ");
    let (ok, _, csv) = reconctl(
        &db,
        &[
            "attribution",
            "report",
            "--month",
            &past.to_string(),
            "--csv",
        ],
    );
    assert!(ok);
    assert_eq!(csv, b"month,frozen\r\n2026-10,true\r\n");
    let (ok, text, _) = reconctl(
        &db,
        &[
            "attribution",
            "report",
            "--month",
            "2026-11",
            "--account",
            "nobody",
        ],
    );
    assert!(!ok && text.contains("no account \"nobody\""), "{text}");
    db.drop_now().await;
}
