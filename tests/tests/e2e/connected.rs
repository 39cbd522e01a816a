//! A merchant the partner referred, announced by a signed `connectedAccount` webhook to
//! the real receiver and worker, becomes an account of this deployment: listed by
//! `reconctl accounts list` with its webhook URL, and its transactions fetched from the
//! simulator with its own token, with no restart. Redeliveries and older deliveries
//! change nothing, a newer token replaces the old one at once, an operator's account is
//! never taken over, and `RECON_REGISTER_CONNECTED_ACCOUNTS=false` registers nothing.

use std::time::{Duration, Instant};

use rand::Rng;
use recon_receiver::signature::sign;
use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::SecretString;

use crate::binaries::{Running, free_port, metric, run_ok, wait_until_healthy};
use crate::sim::{json, sim_accounts, start_sim};
use crate::stack::{AMQP_URL, base_env, start_worker};

const PARTNER_VERIFIER: &str = "cGFydG5lci12ZXJpZmllci10b2tlbi0wMTIzNDU2Nzg5";
const MERCHANT_VERIFIER: &str = "bWVyY2hhbnQtdmVyaWZpZXItdG9rZW4tOTg3NjU0MzIx";
const TAKEN_VERIFIER: &str = "dGFrZW4tdmVyaWZpZXItdG9rZW4tMTEyMjMzNDQ1NQ==";

struct Harness {
    db: TestDatabase,
    env: Vec<(&'static str, String)>,
    receiver_url: String,
    sim_url: String,
    worker_addr: String,
    http: reqwest::Client,
}

impl Harness {
    /// Signs and posts one webhook; the receiver must take it.
    async fn post(&self, account: &str, verifier: &str, webhook_id: &str, ts: i64, body: &str) {
        let response = self
            .http
            .post(format!("{}/webhooks/helcim/{account}", self.receiver_url))
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                sign(verifier, webhook_id, ts, body.as_bytes()).unwrap(),
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{webhook_id} to {account}");
    }

    async fn connected(&self, webhook_id: &str, ts: i64, connected_id: &str, token: &str) {
        let body = format!(
            r#"{{"type":"connectedAccount","data":{{"connectedAccountId":"{connected_id}","apiToken":"{token}","status":"APPROVED"}}}}"#
        );
        self.post("partner", PARTNER_VERIFIER, webhook_id, ts, &body)
            .await;
    }

    /// The merchant's signed `cardTransaction` webhook announcing `tx`.
    async fn merchant_transaction(&self, webhook_id: &str, ts: i64, tx: u64) {
        let body = format!(r#"{{"id":"{tx}","type":"cardTransaction"}}"#);
        self.post("connected-5501", MERCHANT_VERIFIER, webhook_id, ts, &body)
            .await;
    }

    async fn until(&self, what: &str, sql: &str, ready: impl Fn(i64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = -1;
        while Instant::now() < deadline {
            last = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&self.db.pool)
                .await
                .unwrap();
            if ready(last) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{what}: still {last} after 30 s ({sql})");
    }

    /// The first transaction the simulator shows the holder of `token`.
    async fn a_transaction_of(&self, token: &str) -> u64 {
        let url = format!("{}/v2/card-transactions", self.sim_url);
        let page = json(self.http.get(url).header("api-token", token)).await;
        page[0]["transactionId"].as_u64().unwrap()
    }

    async fn account_row(
        &self,
        id: &str,
    ) -> Option<(Option<Vec<u8>>, Option<String>, Option<String>)> {
        sqlx::query_as(
            "SELECT api_token_encrypted, api_token_lookup, referred_by FROM accounts WHERE account_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await
        .unwrap()
    }

    async fn worker_jobs(&self, outcome: &str) -> f64 {
        let url = format!("http://{}/metrics", self.worker_addr);
        let outcome = format!("outcome=\"{outcome}\"");
        metric(&self.http, &url, "worker_jobs_total", &outcome).await
    }

    /// Waits until the token of `connected_account_id` is kept in `connected_accounts`.
    async fn kept_in_connected_accounts(&self, connected_account_id: &str) {
        let sql = format!(
            "SELECT count(*) FROM connected_accounts WHERE connected_account_id = '{connected_account_id}'"
        );
        self.until("kept in connected_accounts", &sql, |n| n == 1)
            .await;
    }

    fn start_worker(&self, extra: &[(&'static str, String)]) -> Running {
        start_worker(&self.env, &self.worker_addr, extra)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_account_is_registered_listed_and_fetched_with_its_own_token_without_a_restart()
{
    let db = TestDatabase::create().await;
    let prefix = format!("e2e-{:012x}", rand::rng().random::<u64>() >> 16);
    let receiver_addr = format!("127.0.0.1:{}", free_port());
    let sim = start_sim(
        &[
            "--seed",
            "5",
            "--transactions-per-account",
            "5",
            "--webhook-url",
            &format!("http://{receiver_addr}/webhooks/helcim/{{account_id}}"),
            "--hold-deliveries",
        ],
        &[("RUST_LOG", "warn".to_string())],
    )
    .await;
    let mut env = base_env(&db, &prefix);
    env.extend([
        ("AMQP_RETRY_DELAYS", "200ms,500ms".to_string()),
        ("WORKER_MAX_RETRIES", "3".to_string()),
        ("HELCIM_API_BASE_URL", format!("{}/v2", sim.url)),
        ("HELCIM_LIMITS", "unlimited".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]);
    let master = env
        .iter()
        .find(|(k, _)| *k == "RECON_MASTER_KEY")
        .map(|(_, v)| v.clone())
        .unwrap();
    let lookup = MasterKey::from_base64(&SecretString::from(master), "TEST")
        .unwrap()
        .derive_lookup();
    // The sim accounts stand in for merchants the partner referred: none of them is
    // registered by hand, so their tokens are new to this deployment.
    let http = reqwest::Client::new();
    let sim_accounts = sim_accounts(&http, &sim.url).await;
    let token = |i: usize| sim_accounts[i]["apiToken"].as_str().unwrap().to_string();
    let (first_token, newer_token) = (token(1), token(0));

    run_ok("reconctl", &["migrate"], &env);
    let mut operator = env.clone();
    operator.extend([
        ("V", PARTNER_VERIFIER.to_string()),
        ("P", "partner-token-for-the-gateway".to_string()),
        ("T", TAKEN_VERIFIER.to_string()),
    ]);
    run_ok(
        "reconctl",
        &[
            "accounts",
            "add",
            "partner",
            "--verifier-token-env",
            "V",
            "--partner-token-env",
            "P",
        ],
        &operator,
    );
    // An account an operator made at the id connectedAccountId 7000 would get.
    run_ok(
        "reconctl",
        &[
            "accounts",
            "add",
            "connected-7000",
            "--verifier-token-env",
            "T",
        ],
        &operator,
    );

    let mut receiver_env = env.clone();
    receiver_env.push(("RECEIVER_ADDR", receiver_addr.clone()));
    let _receiver = Running::start("recon-receiver", &[], &receiver_env);
    wait_until_healthy(&format!("http://{receiver_addr}/readyz")).await;
    let h = Harness {
        db,
        env,
        receiver_url: format!("http://{receiver_addr}"),
        sim_url: sim.url.clone(),
        worker_addr: format!("127.0.0.1:{}", free_port()),
        http,
    };
    let mut worker = h.start_worker(&[]);
    wait_until_healthy(&format!("http://{}/readyz", h.worker_addr)).await;

    let now = chrono::Utc::now().timestamp();
    h.connected("msg_ca_1", now - 120, "5501", &first_token)
        .await;
    h.until(
        "registered",
        "SELECT count(*) FROM accounts WHERE account_id = 'connected-5501'",
        |n| n == 1,
    )
    .await;
    let (_, fingerprint, referred_by) = h.account_row("connected-5501").await.unwrap();
    assert_eq!(fingerprint.unwrap(), lookup.fingerprint(&first_token));
    assert_eq!(referred_by.as_deref(), Some("partner"));

    let listing = run_ok(
        "reconctl",
        &[
            "accounts",
            "list",
            "--public-url",
            "https://recon.example.com/",
        ],
        &h.env,
    );
    assert!(
        listing.lines().any(|l| l
            == "connected-5501\thttps://recon.example.com/webhooks/helcim/connected-5501\tyes\tnone\tfrom partner\tpartner\t5501\t-"),
        "{listing}"
    );
    assert!(
        listing.contains("next: connected-5501 has no verifier token"),
        "{listing}"
    );
    assert_eq!(
        listing.lines().last(),
        Some("3 accounts, 1 without a verifier token")
    );
    assert!(!listing.contains(&first_token), "tokens never print");

    // The operator's next step, then the merchant's first transaction webhook: fetched
    // with the registered token.
    let mut with_verifier = h.env.clone();
    with_verifier.push(("V", MERCHANT_VERIFIER.to_string()));
    run_ok(
        "reconctl",
        &[
            "accounts",
            "rotate-verifier",
            "connected-5501",
            "--verifier-token-env",
            "V",
        ],
        &with_verifier,
    );
    let first_tx = h.a_transaction_of(&first_token).await;
    h.merchant_transaction("msg_tx_1", now, first_tx).await;
    let reconciled = |tx: u64| {
        format!(
            "SELECT count(*) FROM card_transactions WHERE account_id = 'connected-5501' \
             AND transaction_id = {tx} AND reconciliation_status <> 'pending'"
        )
    };
    h.until(
        "the first transaction fetched",
        &reconciled(first_tx),
        |n| n == 1,
    )
    .await;

    // A redelivery, and an older delivery processed late: nothing changes.
    let before = h.account_row("connected-5501").await;
    let duplicates = h.worker_jobs("duplicate").await;
    h.connected("msg_ca_1", now - 120, "5501", &first_token)
        .await;
    h.connected("msg_ca_0", now - 240, "5501", "an-older-token-3f9a")
        .await;
    h.until(
        "the older delivery processed",
        "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = 'msg_ca_0' AND outcome = 'recorded'",
        |n| n == 1,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.worker_jobs("duplicate").await <= duplicates {
        assert!(
            Instant::now() < deadline,
            "the redelivery was not processed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h.account_row("connected-5501").await, before);

    // A newer token replaces the old one, and the very next fetch uses it (the first
    // token cannot see this transaction: a stale client would be refused).
    h.connected("msg_ca_2", now - 60, "5501", &newer_token)
        .await;
    let replaced = format!(
        "SELECT count(*) FROM accounts WHERE account_id = 'connected-5501' AND api_token_lookup = '{}'",
        lookup.fingerprint(&newer_token)
    );
    h.until("the newer token", &replaced, |n| n == 1).await;
    let newer_tx = h.a_transaction_of(&newer_token).await;
    h.merchant_transaction("msg_tx_2", now, newer_tx).await;
    h.until("fetched with the newer token", &reconciled(newer_tx), |n| {
        n == 1
    })
    .await;

    // The operator's `connected-7000` is left alone; the token is kept all the same.
    let taken_before = h.account_row("connected-7000").await;
    h.connected("msg_ca_7000", now, "7000", "token-of-7000-c41d")
        .await;
    h.until(
        "the colliding delivery processed",
        "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = 'msg_ca_7000' AND outcome = 'not registered'",
        |n| n == 1,
    )
    .await;
    assert_eq!(h.account_row("connected-7000").await, taken_before);
    assert_eq!(taken_before.unwrap().2, None, "no referrer was set on it");
    h.kept_in_connected_accounts("7000").await;

    // Switched off: only the connected_accounts row.
    worker.stop();
    worker = h.start_worker(&[("RECON_REGISTER_CONNECTED_ACCOUNTS", "false".to_string())]);
    wait_until_healthy(&format!("http://{}/readyz", h.worker_addr)).await;
    h.connected("msg_ca_8000", now, "8000", "token-of-8000-77ab")
        .await;
    h.kept_in_connected_accounts("8000").await;
    assert_eq!(h.account_row("connected-8000").await, None);

    let _ = worker.child.kill();
    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    recon_queue::Topology::new(&prefix)
        .with_retry_delays(vec![Duration::from_millis(200), Duration::from_millis(500)])
        .delete(&connection)
        .await
        .unwrap();
    h.db.drop_now().await;
}
