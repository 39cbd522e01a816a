//! The attribution engine against a real Postgres: ledger rows written straight into
//! `card_transactions`, evidence through the store, the engine's batches driven
//! directly, and the clock moved with an offset file.

#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use recon_attribution::{Clock, CloseCalendar};
use recon_queue::envelope::alert::{AttributionAlert, Detail};
use recon_store::evidence::{Evidence, Outcome, Source};
use recon_store::testing::TestDatabase;
use recon_worker::attribution::engine::{self, Engine};
use sqlx::PgPool;
use support::ledger::{ledger, record, s};

struct Harness {
    db: TestDatabase,
    engine: Engine,
    offset_file: PathBuf,
}

impl Harness {
    async fn new() -> Harness {
        let db = TestDatabase::create().await;
        let name = db.url.rsplit('/').next().unwrap_or("db").to_string();
        let offset_file = std::env::temp_dir().join(format!("recon-clock-{name}"));
        let engine = Engine {
            calendar: CloseCalendar::default(),
            grace: Duration::from_secs(600),
            match_window: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(15),
            batch_size: 500,
            clock: Clock::with_offset_file(&offset_file),
        };
        Harness {
            db,
            engine,
            offset_file,
        }
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Moves the engine's clock `secs` ahead of the system's.
    fn advance(&self, secs: i64) {
        std::fs::write(&self.offset_file, secs.to_string()).unwrap();
    }

    async fn run(&self) {
        engine::process_once(self.pool(), &self.engine)
            .await
            .unwrap()
    }

    async fn finish(self) {
        let _ = std::fs::remove_file(&self.offset_file);
        self.db.drop_now().await;
    }
}

async fn purchase(pool: &PgPool, id: i64) {
    ledger(pool, id, "purchase", "APPROVED", 1999, Utc::now(), None).await;
}

/// An answered purchase through the gateway with an accepted partner token.
fn gateway(key: &str, transaction_id: Option<i64>) -> Evidence {
    support::ledger::gateway(key, transaction_id, Some(1))
}

fn receipt(key: &str, transaction_id: Option<i64>) -> Evidence {
    Evidence {
        source: Source::Receipt,
        endpoint: "receipt".into(),
        outcome: Outcome::Reported,
        response_status: None,
        receipt_id: Some(key.into()),
        api_token_lookup: None,
        ..gateway(key, transaction_id)
    }
}

type GapRow = (
    i64,
    Option<String>,
    Option<i64>,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// (id, account, transaction, class, reason, status, resolution), by transaction then id.
async fn gaps(pool: &PgPool) -> Vec<GapRow> {
    sqlx::query_as(
        "SELECT id, account_id, transaction_id, class, reason, status, resolution
           FROM attribution_gaps ORDER BY transaction_id NULLS LAST, id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn verdict(pool: &PgPool, id: i64) -> (String, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT verdict, gap_class, match_method FROM attribution_transactions
          WHERE account_id = 'm1' AND transaction_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// (kind, decoded payload) of every outbox row; checks the payload names its row.
async fn alerts(pool: &PgPool) -> Vec<(String, AttributionAlert)> {
    let rows: Vec<(i64, String, Vec<u8>)> =
        sqlx::query_as("SELECT id, kind, payload FROM attribution_alerts ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, kind, payload)| {
            let alert = AttributionAlert::decode(payload.as_slice()).unwrap();
            assert_eq!(
                alert.alert_id, id as u64,
                "the payload carries its row's id"
            );
            assert_eq!(alert.kind, kind);
            (kind, alert)
        })
        .collect()
}

#[tokio::test]
async fn every_class_is_detected_with_its_evidence_and_after_its_grace_period() {
    let h = Harness::new().await;
    let pool = h.pool();
    for id in [1, 2, 3, 6] {
        purchase(pool, id).await;
    }
    let now = Utc::now();
    ledger(pool, 4, "purchase", "APPROVED", 500, now, Some("INV-A")).await;
    ledger(pool, 5, "purchase", "APPROVED", 500, now, Some("INV-A")).await;
    let rejected = Evidence {
        is_valid_partner_token: Some(0),
        ..gateway("rejected", Some(1))
    };
    let missing = Evidence {
        partner_token_sent: false,
        is_valid_partner_token: None,
        ..gateway("missing", Some(2))
    };
    let ambiguous = Evidence {
        invoice_number: s("INV-A"),
        amount_minor: Some(500),
        ..receipt("ambiguous", None)
    };
    let unregistered = Evidence {
        account_id: None,
        api_token_lookup: Some("cd".repeat(16)),
        ..gateway("unregistered", Some(77))
    };
    record(
        pool,
        vec![
            rejected,
            missing,
            ambiguous,
            unregistered,
            receipt("no-such-transaction", Some(999)),
            gateway("attributed", Some(6)),
        ],
    )
    .await;

    h.run().await;
    let found: Vec<_> = gaps(pool)
        .await
        .into_iter()
        .map(|g| (g.2, g.3, g.4, g.5))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some(1), "token_rejected".into(), None, "open".into()),
            (Some(2), "token_missing".into(), None, "open".into()),
            (
                None,
                "orphan_evidence".into(),
                s("ambiguous"),
                "open".into()
            ),
        ],
        "before the grace period only evidence decides"
    );
    assert_eq!(verdict(pool, 3).await.0, "pending");
    assert_eq!(
        verdict(pool, 6).await,
        ("attributed".into(), None, s("transaction_id"))
    );
    let candidates: Vec<i64> =
        sqlx::query_scalar("SELECT candidates FROM attribution_gaps WHERE reason = 'ambiguous'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(candidates, vec![4, 5]);

    h.advance(601);
    h.run().await;
    let found: Vec<_> = gaps(pool)
        .await
        .into_iter()
        .map(|g| (g.1, g.2, g.3, g.4))
        .collect();
    let m1 = s("m1");
    assert_eq!(
        found,
        vec![
            (m1.clone(), Some(1), "token_rejected".into(), None),
            (m1.clone(), Some(2), "token_missing".into(), None),
            (m1.clone(), Some(3), "unattributed".into(), None),
            (m1.clone(), Some(4), "unattributed".into(), None),
            (m1.clone(), Some(5), "unattributed".into(), None),
            (
                None,
                Some(77),
                "orphan_evidence".into(),
                s("unregistered_account")
            ),
            (
                m1.clone(),
                Some(999),
                "orphan_evidence".into(),
                s("no_transaction")
            ),
            (m1.clone(), None, "orphan_evidence".into(), s("ambiguous")),
        ]
    );
    let lookup: Option<String> = sqlx::query_scalar(
        "SELECT api_token_lookup FROM attribution_gaps WHERE reason = 'unregistered_account'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(lookup, Some("cd".repeat(16)));
    assert_eq!(
        verdict(pool, 3).await,
        ("gap".into(), s("unattributed"), None)
    );
    let opened = alerts(pool).await;
    assert_eq!(opened.len(), 8, "one gap_opened alert per gap");
    assert!(opened.iter().all(|(kind, _)| kind == "gap_opened"));
    let Some(Detail::Gap(detail)) = &opened[0].1.detail else {
        panic!("a gap alert carries the gap");
    };
    assert_eq!(detail.class, "token_rejected");
    assert_eq!(detail.amount, "19.99");
    assert_eq!(count(pool, "attribution_gap_events").await, 8);
    // Nothing left to do: running again changes nothing.
    h.run().await;
    assert_eq!(count(pool, "attribution_gaps").await, 8);
    assert_eq!(count(pool, "attribution_alerts").await, 8);
    h.finish().await;
}

#[tokio::test]
async fn late_evidence_resolves_the_gap_it_explains_and_the_trail_says_so() {
    let h = Harness::new().await;
    let pool = h.pool();
    purchase(pool, 10).await;
    record(pool, vec![receipt("early", Some(30))]).await;
    h.run().await;
    h.advance(601);
    h.run().await;
    let before: Vec<_> = gaps(pool).await.into_iter().map(|g| (g.2, g.3)).collect();
    assert_eq!(
        before,
        vec![
            (Some(10), "unattributed".to_string()),
            (Some(30), "orphan_evidence".to_string())
        ]
    );

    // The receipt for 10 arrives late; the webhook for 30 arrives late.
    record(pool, vec![receipt("late", Some(10))]).await;
    purchase(pool, 30).await;
    h.run().await;
    let after: Vec<_> = gaps(pool)
        .await
        .into_iter()
        .map(|g| (g.2, g.5, g.6))
        .collect();
    assert_eq!(
        after,
        vec![
            (Some(10), "resolved".into(), s("evidence")),
            (Some(30), "resolved".into(), s("evidence")),
        ]
    );
    assert_eq!(verdict(pool, 10).await.0, "attributed");
    assert_eq!(verdict(pool, 30).await.0, "attributed");
    let trail: Vec<(Option<String>, String, String, Option<String>)> = sqlx::query_as(
        "SELECT e.from_status, e.to_status, e.actor, e.note FROM attribution_gap_events e
           JOIN attribution_gaps g ON g.id = e.gap_id
          WHERE g.transaction_id = 10 ORDER BY e.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let late_id: i64 =
        sqlx::query_scalar("SELECT id FROM attribution_evidence WHERE dedupe_key = 'late'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].0, None);
    assert_eq!(trail[0].1, "open");
    assert_eq!(trail[1].0, s("open"));
    assert_eq!(trail[1].1, "resolved");
    assert!(trail.iter().all(|t| t.2 == "engine"));
    assert!(
        trail[1]
            .3
            .as_deref()
            .unwrap()
            .contains(&format!("evidence #{late_id}"))
    );
    let kinds: Vec<String> = alerts(pool).await.into_iter().map(|a| a.0).collect();
    assert_eq!(
        kinds,
        ["gap_opened", "gap_opened", "gap_resolved", "gap_resolved"]
    );
    h.finish().await;
}

#[tokio::test]
async fn helcim_pay_evidence_matches_its_transaction_by_invoice_whichever_comes_first() {
    let h = Harness::new().await;
    let pool = h.pool();
    let created = Utc::now();
    let initialize = |key: &str, invoice: &str| Evidence {
        endpoint: "helcim-pay/initialize".into(),
        invoice_number: s(invoice),
        observed_at: created - chrono::Duration::seconds(30),
        ..gateway(key, None)
    };
    // Evidence first, then the transaction; and the other way round.
    record(pool, vec![initialize("hp-1", "INV-1")]).await;
    h.run().await;
    ledger(
        pool,
        20,
        "purchase",
        "APPROVED",
        1999,
        created,
        Some("INV-1"),
    )
    .await;
    ledger(
        pool,
        21,
        "purchase",
        "APPROVED",
        1999,
        created,
        Some("INV-2"),
    )
    .await;
    h.run().await;
    record(pool, vec![initialize("hp-2", "INV-2")]).await;
    h.run().await;
    for id in [20, 21] {
        assert_eq!(
            verdict(pool, id).await,
            ("attributed".into(), None, s("invoice"))
        );
    }
    h.advance(601);
    h.run().await;
    assert!(gaps(pool).await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn declines_refunds_preauths_and_verifies_are_never_gaps() {
    let h = Harness::new().await;
    let pool = h.pool();
    let now = Utc::now();
    let rows = [
        (40, "purchase", "DECLINED"),
        (41, "refund", "APPROVED"),
        (42, "preauth", "APPROVED"),
        (43, "verify", "APPROVED"),
        (44, "reverse", "APPROVED"),
    ];
    for (id, kind, status) in rows {
        ledger(pool, id, kind, status, 1999, now, None).await;
        let evidence = Evidence {
            partner_token_sent: false,
            is_valid_partner_token: None,
            ..gateway(&format!("e{id}"), Some(id))
        };
        record(pool, vec![evidence]).await;
    }
    h.run().await;
    h.advance(601);
    h.run().await;
    assert!(gaps(pool).await.is_empty());
    let kinds: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT transaction_id, kind, verdict FROM attribution_transactions ORDER BY transaction_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        vec![
            (40, "none".into(), "none".into()),
            (41, "adjustment".into(), "none".into()),
            (42, "none".into(), "none".into()),
            (43, "none".into(), "none".into()),
            (44, "adjustment".into(), "none".into()),
        ]
    );
    h.finish().await;
}

#[tokio::test]
async fn engines_sharing_the_same_dirty_rows_never_double_a_gap_or_an_alert() {
    let h = Harness::new().await;
    let pool = h.pool();
    let ids: Vec<i64> = (100..300).collect();
    for &id in &ids {
        purchase(pool, id).await;
    }
    let missing: Vec<Evidence> = ids
        .iter()
        .map(|&id| Evidence {
            partner_token_sent: false,
            is_valid_partner_token: None,
            ..gateway(&format!("m{id}"), Some(id))
        })
        .collect();
    record(pool, missing).await;
    // More marks for the same transactions: each change of the row marks it again.
    sqlx::query("UPDATE card_transactions SET invoice_number = 'X' || transaction_id")
        .execute(pool)
        .await
        .unwrap();
    let mut small = h.engine.clone();
    small.batch_size = 7;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let engine = small.clone();
            tokio::spawn(async move { engine::process_once(&pool, &engine).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(count(pool, "attribution_dirty").await, 0);
    assert_eq!(count(pool, "attribution_gaps").await, 200);
    assert_eq!(count(pool, "attribution_alerts").await, 200);
    assert_eq!(count(pool, "attribution_gap_events").await, 200);
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT transaction_id) FROM attribution_gaps WHERE class = 'token_missing'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(distinct, 200);
    h.finish().await;
}

#[tokio::test]
async fn evidence_after_the_close_becomes_a_note_and_the_gap_stays() {
    let h = Harness::new().await;
    let pool = h.pool();
    // October 2026 closed on 2026-11-01 at 06:00 UTC: its gap is expired at once.
    let october = Utc.with_ymd_and_hms(2026, 10, 20, 18, 0, 0).unwrap();
    ledger(pool, 50, "purchase", "APPROVED", 1999, october, None).await;
    // This month's gap is open until the clock passes the close.
    purchase(pool, 51).await;
    let missing = |key: &str, id| Evidence {
        partner_token_sent: false,
        is_valid_partner_token: None,
        ..gateway(key, Some(id))
    };
    record(pool, vec![missing("m50", 50), missing("m51", 51)]).await;
    h.run().await;
    let statuses: Vec<_> = gaps(pool).await.into_iter().map(|g| (g.2, g.5)).collect();
    let month_close =
        CloseCalendar::default().close_of(CloseCalendar::default().month_of(Utc::now()));
    assert_eq!(
        statuses,
        vec![
            (Some(50), "expired".to_string()),
            (Some(51), "open".to_string())
        ]
    );

    h.advance((month_close - Utc::now()).num_seconds() + 60);
    record(
        pool,
        vec![gateway("ok50", Some(50)), gateway("ok51", Some(51))],
    )
    .await;
    h.run().await;
    let statuses: Vec<_> = gaps(pool)
        .await
        .into_iter()
        .map(|g| (g.2, g.5, g.6))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (Some(50), "expired".to_string(), None),
            (Some(51), "open".to_string(), None)
        ],
        "nothing is rewritten after the close"
    );
    let notes: Vec<(i64, String)> = sqlx::query_as(
        "SELECT g.transaction_id, n.note FROM attribution_post_close_notes n
           JOIN attribution_gaps g ON g.id = n.gap_id ORDER BY g.transaction_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(notes.len(), 2);
    assert!(notes[0].1.contains("arrived after the close"));
    assert_eq!(verdict(pool, 50).await.0, "gap");
    assert_eq!(
        count(pool, "attribution_alerts").await,
        2,
        "no gap_resolved"
    );
    // Evidence seen again: still one note per gap and evidence.
    h.run().await;
    sqlx::query("UPDATE attribution_evidence SET customer_code = 'again'")
        .execute(pool)
        .await
        .unwrap();
    h.run().await;
    assert_eq!(count(pool, "attribution_post_close_notes").await, 2);
    h.finish().await;
}

#[tokio::test]
async fn months_and_deadlines_follow_the_close_zone_on_both_sides_of_daylight_saving() {
    let h = Harness::new().await;
    let pool = h.pool();
    // America/Edmonton: MDT (UTC-6) until 2026-11-01 02:00, MST (UTC-7) until
    // 2027-03-14 02:00, MDT again after.
    let cases = [
        (
            60,
            "2026-11-01T05:59:59Z",
            "2026-10-01",
            "2026-11-01T06:00:00Z",
        ),
        (
            61,
            "2026-11-01T06:00:00Z",
            "2026-11-01",
            "2026-12-01T07:00:00Z",
        ),
        (
            62,
            "2027-03-01T06:59:59Z",
            "2027-02-01",
            "2027-03-01T07:00:00Z",
        ),
        (
            63,
            "2027-03-01T07:00:00Z",
            "2027-03-01",
            "2027-04-01T06:00:00Z",
        ),
        (
            64,
            "2027-04-01T05:59:59Z",
            "2027-03-01",
            "2027-04-01T06:00:00Z",
        ),
        (
            65,
            "2027-04-01T06:00:00Z",
            "2027-04-01",
            "2027-05-01T06:00:00Z",
        ),
    ];
    for (id, at, _, _) in cases {
        let at: DateTime<Utc> = at.parse().unwrap();
        ledger(pool, id, "purchase", "APPROVED", 1999, at, None).await;
        let evidence = Evidence {
            partner_token_sent: false,
            is_valid_partner_token: None,
            ..gateway(&format!("m{id}"), Some(id))
        };
        record(pool, vec![evidence]).await;
    }
    h.run().await;
    for (id, _, month, deadline) in cases {
        let (gap_month, gap_deadline, tx_month): (
            chrono::NaiveDate,
            DateTime<Utc>,
            chrono::NaiveDate,
        ) = sqlx::query_as(
            "SELECT g.month, g.deadline, t.month FROM attribution_gaps g
                   JOIN attribution_transactions t USING (account_id, transaction_id)
                  WHERE g.transaction_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(gap_month.to_string(), month, "month of transaction {id}");
        assert_eq!(
            tx_month.to_string(),
            month,
            "verdict month of transaction {id}"
        );
        assert_eq!(
            gap_deadline,
            deadline.parse::<DateTime<Utc>>().unwrap(),
            "deadline of transaction {id}"
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn the_spawned_engine_wakes_on_a_notification_and_stops_on_shutdown() {
    use clap::Parser;
    let h = Harness::new().await;
    let pool = h.pool();
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        attribution: recon_worker::attribution::settings::AttributionSettings,
    }
    let settings = Cli::parse_from(["test", "--sweep-interval-secs", "3600"]).attribution;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = engine::spawn(pool.clone(), &settings, shutdown.clone()).expect("enabled");
    // Let it start listening, then store a transaction with its evidence.
    tokio::time::sleep(Duration::from_millis(300)).await;
    purchase(pool, 70).await;
    record(
        pool,
        vec![Evidence {
            is_valid_partner_token: Some(0),
            ..gateway("rejected", Some(70))
        }],
    )
    .await;
    let started = std::time::Instant::now();
    while count(pool, "attribution_gaps").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no gap in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gaps(pool).await[0].3, "token_rejected");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the engine stops on shutdown")
        .unwrap();
    h.finish().await;
}

#[tokio::test]
async fn a_mark_that_always_fails_does_not_hold_up_the_others() {
    let h = Harness::new().await;
    let pool = h.pool();
    // A stand-in for a row the rules cannot store: storing transaction 13's verdict fails.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_13() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.transaction_id = 13 THEN RAISE EXCEPTION 'cannot store 13'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_13 BEFORE INSERT OR UPDATE ON attribution_transactions
             FOR EACH ROW EXECUTE FUNCTION refuse_13();",
    )
    .execute(pool)
    .await
    .unwrap();
    for id in [12, 13, 14] {
        purchase(pool, id).await;
        let evidence = Evidence {
            is_valid_partner_token: Some(0),
            ..gateway(&format!("r{id}"), Some(id))
        };
        record(pool, vec![evidence]).await;
    }
    h.run().await;
    let judged: Vec<Option<i64>> = gaps(pool).await.into_iter().map(|g| g.2).collect();
    assert_eq!(judged, vec![Some(12), Some(14)]);
    // The culprit's marks (its own, and its evidence's) wait to be retried.
    let (waiting, about_13): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE transaction_id = 13 OR evidence_id =
                    (SELECT id FROM attribution_evidence WHERE dedupe_key = 'r13'))
           FROM attribution_dirty",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(waiting > 0);
    assert_eq!(waiting, about_13);
    h.finish().await;
}

#[tokio::test]
async fn engines_racing_the_writers_end_with_verdicts_that_agree_with_the_evidence() {
    let h = Harness::new().await;
    let pool = h.pool();
    // Past the grace period from the start: a transaction judged before its evidence
    // is committed becomes a gap, which its evidence must then resolve.
    h.advance(601);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let engines: Vec<_> = (0..3)
        .map(|_| {
            let engine = Engine {
                batch_size: 5,
                ..h.engine.clone()
            };
            tokio::spawn(engine::run(pool.clone(), engine, shutdown.clone()))
        })
        .collect();
    let writers: Vec<_> = (0..2_i64)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..100_i64 {
                    let id = 1_000 + w * 100 + n;
                    if n % 2 == 0 {
                        purchase(&pool, id).await;
                        record(&pool, vec![gateway(&format!("ok{id}"), Some(id))]).await;
                    } else {
                        record(&pool, vec![gateway(&format!("ok{id}"), Some(id))]).await;
                        purchase(&pool, id).await;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let started = std::time::Instant::now();
    while count(pool, "attribution_dirty").await > 0
        || count(pool, "attribution_transactions").await < 200
    {
        assert!(started.elapsed() < Duration::from_secs(60), "engines idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let any batch in flight commit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    for engine in engines {
        engine.await.unwrap();
    }
    let verdicts: Vec<(String, i64)> =
        sqlx::query_as("SELECT verdict, count(*) FROM attribution_transactions GROUP BY verdict")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(verdicts, vec![("attributed".to_string(), 200)]);
    let unresolved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_gaps WHERE status <> 'resolved' OR resolution <> 'evidence'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        unresolved, 0,
        "every gap opened in the race was resolved by its evidence"
    );
    let gaps = count(pool, "attribution_gaps").await;
    assert_eq!(count(pool, "attribution_alerts").await, 2 * gaps);
    assert_eq!(count(pool, "attribution_gap_events").await, 2 * gaps);
    h.finish().await;
}

#[tokio::test]
async fn better_evidence_changes_a_gaps_class_and_a_persons_resolution_stands() {
    let h = Harness::new().await;
    let pool = h.pool();
    for id in [80, 81] {
        purchase(pool, id).await;
        let missing = Evidence {
            partner_token_sent: false,
            is_valid_partner_token: None,
            ..gateway(&format!("missing{id}"), Some(id))
        };
        record(pool, vec![missing]).await;
    }
    h.run().await;
    // A person acknowledges 80 and resolves 81 (as the API does, under the row lock).
    sqlx::query("UPDATE attribution_gaps SET status = 'acknowledged' WHERE transaction_id = 80")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE attribution_gaps SET status = 'resolved', resolution = 'person' WHERE transaction_id = 81",
    )
    .execute(pool)
    .await
    .unwrap();
    let rejected = |id: i64| Evidence {
        is_valid_partner_token: Some(0),
        ..gateway(&format!("rejected{id}"), Some(id))
    };
    record(pool, vec![rejected(80), rejected(81)]).await;
    h.run().await;
    let found: Vec<_> = gaps(pool)
        .await
        .into_iter()
        .map(|g| (g.2, g.3, g.5))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some(80), "token_rejected".into(), "acknowledged".into()),
            (Some(81), "token_missing".into(), "resolved".into()),
        ]
    );
    let change: (String, String, String, String) = sqlx::query_as(
        "SELECT e.from_class, e.to_class, e.from_status, e.to_status FROM attribution_gap_events e
           JOIN attribution_gaps g ON g.id = e.gap_id
          WHERE g.transaction_id = 80 AND e.from_class IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        change,
        (
            "token_missing".into(),
            "token_rejected".into(),
            "acknowledged".into(),
            "acknowledged".into()
        )
    );
    assert_eq!(
        verdict(pool, 80).await,
        ("gap".into(), s("token_rejected"), s("transaction_id"))
    );
    assert_eq!(verdict(pool, 81).await.0, "waived");

    // The accepted token arrives: the acknowledged gap is resolved by evidence; the
    // person's resolution is kept, and the transaction is attributed.
    record(
        pool,
        vec![gateway("ok80", Some(80)), gateway("ok81", Some(81))],
    )
    .await;
    h.run().await;
    let found: Vec<_> = gaps(pool)
        .await
        .into_iter()
        .map(|g| (g.2, g.5, g.6))
        .collect();
    assert_eq!(
        found,
        vec![
            (Some(80), "resolved".into(), s("evidence")),
            (Some(81), "resolved".into(), s("person")),
        ]
    );
    assert_eq!(verdict(pool, 80).await.0, "attributed");
    assert_eq!(verdict(pool, 81).await.0, "attributed");
    h.finish().await;
}
