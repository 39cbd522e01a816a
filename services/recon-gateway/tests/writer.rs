//! The evidence writer against a real Postgres: one record Postgres refuses for what it
//! holds (a NUL in a text field, a CHECK of migration 0008) must not stall the writer
//! and hold back every record after it; it is set aside where an operator can read it.
//! A Postgres that cannot be reached sets nothing aside: the records wait.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use recon_gateway::rejected;
use recon_gateway::spool::{Spool, SpoolConfig};
use recon_gateway::writer::Writer;
use recon_store::evidence::{Evidence, EvidenceStore, Outcome, Source};
use recon_store::testing::TestDatabase;
use serde_json::Value;

fn record(key: &str) -> Evidence {
    Evidence {
        dedupe_key: key.into(),
        source: Source::Gateway,
        account_id: None,
        api_token_lookup: Some("ab".repeat(16)),
        endpoint: "payment/purchase".into(),
        idempotency_key: None,
        partner_token_sent: false,
        partner_token_added: true,
        is_valid_partner_token: Some(1),
        outcome: Outcome::Answered,
        response_status: Some(200),
        transaction_id: Some(7),
        invoice_number: Some("INV-1".into()),
        customer_code: None,
        amount_minor: Some(100),
        currency: Some("CAD".into()),
        observed_at: Utc::now(),
        receipt_id: None,
        submitted_by: None,
    }
}

/// A client can send this: `"invoiceNumber": "INV\u0000"` is valid JSON, and Postgres
/// refuses a NUL in text.
fn with_nul(key: &str) -> Evidence {
    let mut e = record(key);
    e.invoice_number = Some("INV\u{0}1".into());
    e
}

/// Violates `CHECK (NOT (partner_token_sent AND partner_token_added))`.
fn against_a_check(key: &str) -> Evidence {
    let mut e = record(key);
    e.partner_token_sent = true;
    e.partner_token_added = true;
    e
}

fn spool_in(name: &str) -> (PathBuf, Arc<Spool>) {
    let dir = std::env::temp_dir().join(format!(
        "recon-gateway-writer-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let spool = Spool::open(SpoolConfig {
        dir: dir.clone(),
        segment_bytes: 1 << 20,
        memory_capacity: 100,
    })
    .unwrap();
    (dir, Arc::new(spool))
}

/// Passes until the writer has nothing left to do (failing the test on an error).
async fn drain(writer: &mut Writer) {
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_secs(30), writer.pass()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return,
            Ok(Err(error)) => panic!("the writer is stuck: {error:#}"),
            Err(_) => panic!("a pass took over 30 s"),
        }
    }
    panic!("the writer never ran out of work");
}

async fn stored_keys(db: &TestDatabase) -> Vec<String> {
    sqlx::query_scalar("SELECT dedupe_key FROM attribution_evidence ORDER BY dedupe_key")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

fn set_aside(dir: &std::path::Path) -> Vec<Value> {
    match std::fs::read_to_string(dir.join(rejected::FILE)) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_record_postgres_refuses_is_set_aside_and_every_other_record_is_written() {
    let db = TestDatabase::create().await;
    let (dir, spool) = spool_in("refused");
    spool.append(&record("a-before"));
    spool.append(&with_nul("b-nul"));
    spool.append(&against_a_check("c-check"));
    spool.append(&record("d-after"));
    let mut writer = Writer::new(Arc::clone(&spool), EvidenceStore::new(db.pool.clone()), 500);
    drain(&mut writer).await;

    assert_eq!(stored_keys(&db).await, ["a-before", "d-after"]);
    assert_eq!(spool.depth(), 0, "nothing is left waiting in the spool");
    let aside = set_aside(&dir);
    let keys: Vec<&str> = aside
        .iter()
        .map(|l| l["record"]["dedupe_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["b-nul", "c-check"]);
    assert_eq!(aside[0]["sqlstate"], "22021", "{}", aside[0]);
    assert_eq!(aside[1]["sqlstate"], "23514", "{}", aside[1]);
    for line in &aside {
        assert!(line["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(line["rejectedAt"].as_str().is_some());
        // The whole record is there, to be corrected and inserted by hand.
        let back: Evidence = serde_json::from_value(line["record"].clone()).unwrap();
        assert_eq!(back.endpoint, "payment/purchase");
    }

    // Later records go through as usual, and the set-aside ones are not retried.
    spool.append(&record("e-later"));
    drain(&mut writer).await;
    assert_eq!(stored_keys(&db).await, ["a-before", "d-after", "e-later"]);
    assert_eq!(set_aside(&dir).len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
    db.drop_now().await;
}

#[tokio::test]
async fn a_refused_record_held_in_memory_is_set_aside_too() {
    let db = TestDatabase::create().await;
    let (dir, spool) = spool_in("memory");
    // The volume goes away: records are held in memory.
    std::fs::remove_dir_all(&dir).unwrap();
    spool.append(&with_nul("m-nul"));
    spool.append(&record("m-good"));
    assert_eq!(spool.in_memory(), 2);
    std::fs::create_dir_all(&dir).unwrap();
    let mut writer = Writer::new(Arc::clone(&spool), EvidenceStore::new(db.pool.clone()), 500);
    drain(&mut writer).await;
    assert_eq!(stored_keys(&db).await, ["m-good"]);
    assert_eq!(spool.in_memory(), 0);
    let aside = set_aside(&dir);
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0]["record"]["dedupe_key"], "m-nul");
    std::fs::remove_dir_all(&dir).unwrap();
    db.drop_now().await;
}

#[tokio::test]
async fn an_unreachable_postgres_sets_nothing_aside_and_the_records_wait() {
    let (dir, spool) = spool_in("unreachable");
    spool.append(&record("w-1"));
    spool.append(&with_nul("w-2"));
    // Nothing listens on port 1.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let mut writer = Writer::new(Arc::clone(&spool), EvidenceStore::new(pool), 500);
    for _ in 0..3 {
        assert!(writer.pass().await.is_err(), "Postgres is unreachable");
    }
    assert_eq!(spool.depth(), 2, "both records still wait in the spool");
    assert!(set_aside(&dir).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
