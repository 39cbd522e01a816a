//! Month boundaries in the close time zone (America/Edmonton), through the real worker
//! and API: a transaction at 23:59:59 on the last day of a month and one at 00:00:00 on
//! the first of the next, on both sides of the spring daylight-saving change of 2026
//! (Mountain Standard Time, −07:00, until 8 March; Mountain Daylight Time, −06:00,
//! after). In UTC the 23:59:59 ones already fall on the next day, and a fixed offset
//! would misplace one of the two pairs; the API must put each in its own month.
//!
//! Then the month closes (the worker's clock is moved by `RECON_CLOCK_OFFSET_FILE`):
//! its gaps expire, its report is frozen, and asking for it twice, and again after
//! late evidence, gives byte-identical JSON and CSV.
//!
//! The simulator cannot make a transaction at a chosen time, so the ledger rows and
//! the gateway's evidence are written by SQL, exactly as the worker and the gateway
//! write them; the real worker's engine takes them from there.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use rand::Rng;
use recon_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::binaries::{Running, free_port, run_ok, wait_until_healthy};
use crate::stack::{AMQP_URL, base_env, start_worker};

const ACCOUNT: &str = "edmonton-merchant";
const FREEZE_DELAY_SECS: i64 = 5;

struct Harness {
    db: TestDatabase,
    prefix: String,
    clock_file: std::path::PathBuf,
    api_url: String,
    key: String,
    http: reqwest::Client,
    _processes: Vec<Running>,
}

impl Harness {
    async fn start() -> Harness {
        let db = TestDatabase::create().await;
        let prefix = format!("e2e-month-{:012x}", rand::rng().random::<u64>() >> 16);
        let clock_file = std::env::temp_dir().join(format!("recon-clock-month-{}", &prefix[10..]));
        let mut env = base_env(&db, &prefix);
        env.extend([
            ("HELCIM_API_BASE_URL", "http://127.0.0.1:9/v2".to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]);
        run_ok("reconctl", &["migrate"], &env);
        sqlx::query("INSERT INTO accounts (account_id) VALUES ($1)")
            .bind(ACCOUNT)
            .execute(&db.pool)
            .await
            .unwrap();
        let key = run_ok("reconctl", &["api-keys", "create", "--role", "admin"], &env)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string();
        let clock = ("RECON_CLOCK_OFFSET_FILE", clock_file.display().to_string());
        let worker_addr = format!("127.0.0.1:{}", free_port());
        let worker = start_worker(
            &env,
            &worker_addr,
            &[
                ("RECON_ATTRIBUTION", "true".to_string()),
                ("RECON_ATTRIBUTION_SWEEP_INTERVAL", "1".to_string()),
                ("RECON_REPORT_FREEZE_DELAY", FREEZE_DELAY_SECS.to_string()),
                clock.clone(),
            ],
        );
        let api_addr = format!("127.0.0.1:{}", free_port());
        let mut api_env = env.clone();
        api_env.extend([("API_ADDR", api_addr.clone()), clock]);
        let api = Running::start("recon-api", &[], &api_env);
        let harness = Harness {
            db,
            prefix,
            clock_file,
            api_url: format!("http://{api_addr}"),
            key,
            http: reqwest::Client::new(),
            _processes: vec![worker, api],
        };
        // Before anything is stored: the worker's "now" is in late February 2026.
        harness.pretend_now(utc("2026-02-25T12:00:00Z"));
        wait_until_healthy(&format!("http://{worker_addr}/readyz")).await;
        wait_until_healthy(&format!("{}/readyz", harness.api_url)).await;
        harness
    }

    /// Moves the worker's and the API's clock so that "now" is `at`.
    fn pretend_now(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_seconds();
        std::fs::write(&self.clock_file, offset.to_string()).unwrap();
    }

    /// A purchase the worker stored 5 s after it happened, and the gateway's evidence
    /// of it: Helcim's `is-valid-partner-token` answer was `valid`.
    async fn purchase(&self, id: i64, local: &str, created: DateTime<Utc>, minor: i64, valid: i16) {
        sqlx::query(
            "INSERT INTO attribution_evidence
                 (dedupe_key, source, account_id, endpoint, partner_token_sent,
                  partner_token_added, is_valid_partner_token, outcome, response_status,
                  transaction_id, invoice_number, amount_minor, currency, observed_at, recorded_at)
             VALUES ('month-' || $1, 'gateway', $2, 'payment/purchase', false, true, $3,
                     'answered', 200, $1, 'INV-' || $1, $4, 'CAD', $5, $5 + interval '1 second')",
        )
        .bind(id)
        .bind(ACCOUNT)
        .bind(valid)
        .bind(minor)
        .bind(created)
        .execute(&self.db.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO card_transactions
                 (account_id, transaction_id, created_at, created_at_local, status, type,
                  amount_minor, currency, invoice_number, raw, fetched_at,
                  reconciliation_status, first_seen_at, updated_at)
             VALUES ($1, $2, $3, $4, 'APPROVED', 'purchase', $5, 'CAD', 'INV-' || $2, '{}',
                     $3 + interval '5 seconds', 'matched',
                     $3 + interval '5 seconds', $3 + interval '5 seconds')",
        )
        .bind(ACCOUNT)
        .bind(id)
        .bind(created)
        .bind(local)
        .bind(minor)
        .execute(&self.db.pool)
        .await
        .unwrap();
    }

    async fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(&self.key)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path, "application/json").await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Waits until `ready` holds for what `path` answers.
    async fn until(&self, what: &str, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.json(path).await;
            if ready(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {path} answers {value:#}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn finish(self) {
        drop(self._processes);
        let _ = std::fs::remove_file(&self.clock_file);
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .unwrap();
        recon_queue::Topology::new(&self.prefix)
            .delete(&connection)
            .await
            .unwrap();
        self.db.drop_now().await;
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn edmonton(local: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
    chrono_tz::America::Edmonton
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn transactions_of(gaps: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["transactionId"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_either_side_of_midnight_in_edmonton_land_in_their_own_month_across_dst_and_the_frozen_month_never_changes()
 {
    let h = Harness::start().await;
    // (id, local time in Edmonton, UTC it must be, month it belongs to)
    let boundary = [
        (1, "2026-02-28 23:59:59", "2026-03-01T06:59:59Z", "2026-02"),
        (2, "2026-03-01 00:00:00", "2026-03-01T07:00:00Z", "2026-03"),
        (3, "2026-03-31 23:59:59", "2026-04-01T05:59:59Z", "2026-03"),
        (4, "2026-04-01 00:00:00", "2026-04-01T06:00:00Z", "2026-04"),
    ];
    for (id, local, in_utc, _) in boundary {
        let created = edmonton(local);
        assert_eq!(created, utc(in_utc), "{local} in Edmonton");
        h.purchase(id, local, created, 1000 + id, 0).await;
    }
    // One attributed purchase mid-March, so the frozen report has both kinds.
    let mid_march = "2026-03-15 12:00:00";
    h.purchase(5, mid_march, edmonton(mid_march), 5000, 1).await;

    // Each gap in its month, with that month's close as its deadline.
    for (month, ids, deadline) in [
        ("2026-02", vec![1], "2026-03-01T07:00:00Z"),
        ("2026-03", vec![2, 3], "2026-04-01T06:00:00Z"),
        ("2026-04", vec![4], "2026-05-01T06:00:00Z"),
    ] {
        let path = format!("/v1/attribution/gaps?month={month}");
        let gaps = h
            .until("the month's gaps", &path, |v| transactions_of(v) == ids)
            .await;
        for gap in gaps["gaps"].as_array().unwrap() {
            assert_eq!(gap["month"], month);
            assert_eq!(gap["deadline"], deadline);
            assert_eq!(gap["class"], "token_rejected");
            assert_eq!(gap["status"], "open");
        }
    }
    let march = h.json("/v1/attribution/report?month=2026-03").await;
    assert_eq!(march["frozen"], false);
    let line = &march["accounts"][0];
    assert_eq!(
        (line["transactions"].as_i64(), line["volume"].as_str()),
        (Some(3), Some("70.05")),
        "1002 + 1003 + 5000 minor units in March: {march:#}"
    );
    assert_eq!(line["attributedVolume"], "50.00");
    assert_eq!(line["atRiskVolume"], "20.05");

    // March closes: 10 s after its close the freeze delay (5 s) has passed too.
    let march_close = utc("2026-04-01T06:00:00Z");
    h.pretend_now(march_close + chrono::Duration::seconds(10));
    let frozen = h
        .until(
            "March frozen",
            "/v1/attribution/report?month=2026-03",
            |v| v["frozen"] == true,
        )
        .await;
    assert_eq!(
        frozen["asOf"], "2026-04-01T06:00:05Z",
        "a frozen report is as of its close plus the freeze delay, whoever froze it"
    );
    assert_eq!(
        frozen["accounts"], march["accounts"],
        "the same numbers, frozen"
    );
    h.until(
        "March's gaps expired",
        "/v1/attribution/gaps?month=2026-03",
        |v| {
            v["gaps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["status"] == "expired")
        },
    )
    .await;
    let april = h.json("/v1/attribution/report?month=2026-04").await;
    assert_eq!(april["frozen"], false, "April is still open");

    let path = "/v1/attribution/report?month=2026-03";
    let json_once = h.get(path, "application/json").await;
    let csv_once = h.get(path, "text/csv").await;
    assert_eq!(json_once.0, 200);
    assert_eq!(csv_once.0, 200);
    assert_eq!(h.get(path, "application/json").await, json_once);
    assert_eq!(h.get(path, "text/csv").await, csv_once);

    // Late evidence: a receipt says transaction 3's token was valid after all. It
    // becomes a post-close note; the frozen report does not move.
    let receipt = json!({"receipts": [{
        "receiptId": "late-3", "accountId": ACCOUNT, "transactionId": 3,
        "amount": "10.03", "currency": "CAD", "partnerTokenSent": true,
        "isValidPartnerToken": 1, "observedAt": "2026-04-01T05:59:59Z"}]});
    let posted = h
        .http
        .post(format!("{}/v1/attribution/receipts", h.api_url))
        .bearer_auth(&h.key)
        .json(&receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200, "{}", posted.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM attribution_post_close_notes")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
        if notes == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no post-close note for the late receipt"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(h.get(path, "application/json").await, json_once);
    assert_eq!(h.get(path, "text/csv").await, csv_once);
    let noted = h
        .http
        .get(format!("{}{path}", h.api_url))
        .bearer_auth(&h.key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        noted
            .headers()
            .get("recon-post-close-notes")
            .and_then(|v| v.to_str().ok()),
        Some("1"),
        "the late evidence is told beside the frozen report"
    );
    let march_gaps = h.json("/v1/attribution/gaps?month=2026-03").await;
    assert!(
        march_gaps["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "expired"),
        "an expired gap stays expired: {march_gaps:#}"
    );
    h.finish().await;
}
