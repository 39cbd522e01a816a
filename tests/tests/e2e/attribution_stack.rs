//! Everything attribution needs, from the built binaries: the simulator (no generated
//! activity, so every transaction is one a test made), the receiver and a worker with
//! the attribution engine (its clock offset by a file the test writes), `recon-gateway`
//! in front of the simulator, and `recon-api` with an admin key and a partner key.
//!
//! Merchants (simulator seed 1): `A` = `sim-merchant-1` (CAD and USD terminals; its own
//! partner token, the simulator's valid one) and `B` = `sim-merchant-2` (USD only; no
//! partner token of its own, so the gateway adds `HELCIM_PARTNER_TOKEN`, which the
//! simulator answers `0`). The partner key covers `A` only.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use recon_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::attribution_requests::{fresh_key, id_of, purchase};
use crate::binaries::wait_until_healthy;
use crate::binaries::{Running, derived_key, free_port, register_sim_accounts, run_ok};
use crate::sim::{NO_RATE_LIMITS, json, listening_device, start_sim};
use crate::stack::{
    AMQP_URL, count_reaches, sim_env, start_api, start_receiver, start_worker, webhook_flags,
};

/// The simulator's valid partner token (Helcim's test token).
pub const VALID_PARTNER_TOKEN: &str = "f29104118c0d65";
/// The gateway's `HELCIM_PARTNER_TOKEN`: one the simulator answers `0` to.
pub const GATEWAY_DEFAULT_TOKEN: &str = "gateway-default-partner-token-9e2a";

pub struct Merchant {
    pub id: String,
    pub api_token: String,
}

pub struct AttributionStack {
    pub db: TestDatabase,
    prefix: String,
    pub a: Merchant,
    pub b: Merchant,
    pub sim_url: String,
    pub gateway_url: String,
    pub api_url: String,
    pub admin_key: String,
    pub partner_key: String,
    pub clock_file: PathBuf,
    pub processes: Vec<Running>,
    pub http: reqwest::Client,
}

impl AttributionStack {
    /// `worker_extra`: more worker environment (e.g. `RECON_ATTRIBUTION_GRACE`).
    pub async fn start(worker_extra: &[(&'static str, String)]) -> AttributionStack {
        let db = TestDatabase::create().await;
        let prefix = format!("e2e-attr-{:012x}", rand::rng().random::<u64>() >> 16);
        let tag = format!("{:012x}", rand::rng().random::<u64>() >> 16);
        let clock_file = std::env::temp_dir().join(format!("recon-clock-{tag}"));
        std::fs::write(&clock_file, "0").unwrap();
        let (receiver_addr, worker_addr, gateway_addr, api_addr) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let webhook_url = format!("http://{receiver_addr}/webhooks/helcim/{{account_id}}");
        let flags = [
            "--seed",
            "1",
            "--accounts",
            "2",
            "--transactions-per-account",
            "0",
            "--no-probe",
            "--terminal-delay-ms",
            "0",
        ];
        let sim = start_sim(
            &[&flags[..], &webhook_flags(&webhook_url), &NO_RATE_LIMITS].concat(),
            &[("RUST_LOG", "warn".to_string())],
        )
        .await;
        let env = sim_env(&db, &prefix, &sim.url);
        let accounts = register_sim_accounts(&sim.url, &env, true).await;
        let merchant = |i: usize| Merchant {
            id: accounts[i]["accountId"].as_str().unwrap().to_string(),
            api_token: accounts[i]["apiToken"].as_str().unwrap().to_string(),
        };
        let (a, b) = (merchant(0), merchant(1));
        let currencies = |i: usize| -> Vec<String> {
            accounts[i]["terminals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["currency"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(currencies(0), ["CAD", "USD"], "seed 1: A has CAD then USD");
        assert_eq!(currencies(1), ["USD"], "seed 1: B has USD only");
        let mut with_partner = env.clone();
        with_partner.push(("API", a.api_token.clone()));
        with_partner.push(("PARTNER", VALID_PARTNER_TOKEN.to_string()));
        run_ok(
            "reconctl",
            &[
                "accounts",
                "set-tokens",
                &a.id,
                "--api-token-env",
                "API",
                "--partner-token-env",
                "PARTNER",
            ],
            &with_partner,
        );
        let last_line = |out: String| out.lines().last().unwrap_or_default().trim().to_string();
        let admin_key = last_line(run_ok(
            "reconctl",
            &["api-keys", "create", "--role", "admin"],
            &env,
        ));
        let partner_key = last_line(run_ok(
            "reconctl",
            &[
                "api-keys",
                "create",
                "--role",
                "partner",
                "--accounts",
                &a.id,
            ],
            &env,
        ));

        let mut processes = vec![sim.running];
        processes.push(start_receiver(&env, &receiver_addr).await);

        let mut worker_env = vec![
            ("RECON_ATTRIBUTION", "true".to_string()),
            ("RECON_ATTRIBUTION_SWEEP_INTERVAL", "1".to_string()),
            ("RECON_CLOCK_OFFSET_FILE", clock_file.display().to_string()),
            ("RECON_REGISTER_CONNECTED_ACCOUNTS", "false".to_string()),
        ];
        worker_env.extend(worker_extra.iter().cloned());
        processes.push(start_worker(&env, &worker_addr, &worker_env));
        wait_until_healthy(&format!("http://{worker_addr}/readyz")).await;

        let derived = run_ok("reconctl", &["keys", "derive"], &env);
        let gateway_env = vec![
            ("DATABASE_URL", db.url.clone()),
            (
                "RECON_LOOKUP_KEY",
                derived_key(&derived, "RECON_LOOKUP_KEY"),
            ),
            (
                "RECON_PARTNER_TOKEN_KEY",
                derived_key(&derived, "RECON_PARTNER_TOKEN_KEY"),
            ),
            ("HELCIM_API_BASE_URL", format!("{}/v2", sim.url)),
            ("HELCIM_PARTNER_TOKEN", GATEWAY_DEFAULT_TOKEN.to_string()),
            ("GATEWAY_ADDR", gateway_addr.clone()),
            (
                "GATEWAY_SPOOL_DIR",
                std::env::temp_dir()
                    .join(format!("attribution-spool-{tag}"))
                    .display()
                    .to_string(),
            ),
            ("RUST_LOG", "warn".to_string()),
        ];
        processes.push(Running::start("recon-gateway", &[], &gateway_env));
        let gateway_url = format!("http://{gateway_addr}");
        wait_until_healthy(&format!("{gateway_url}/readyz")).await;

        let clock = [("RECON_CLOCK_OFFSET_FILE", clock_file.display().to_string())];
        let (api, api_url) = start_api(&env, &api_addr, &clock).await;
        processes.push(api);
        AttributionStack {
            db,
            prefix,
            a,
            b,
            sim_url: sim.url,
            gateway_url,
            api_url,
            admin_key,
            partner_key,
            clock_file,
            processes,
            http: reqwest::Client::new(),
        }
    }

    /// Moves every process reading the clock file `seconds` ahead of the system clock.
    pub fn set_clock_offset(&self, seconds: i64) {
        std::fs::write(&self.clock_file, seconds.to_string()).unwrap();
    }

    /// A merchant that `A` referred and registered at Helcim, but no account of this
    /// deployment has (the worker does not register referred merchants here).
    pub async fn unregistered_merchant(&self) -> Merchant {
        let made = json(
            self.http
                .post(format!(
                    "{}/sim/accounts/{}/connected-accounts",
                    self.sim_url, self.a.id
                ))
                .json(&json!({})),
        )
        .await;
        Merchant {
            id: made["accountId"].as_str().unwrap().to_string(),
            api_token: made["apiToken"].as_str().unwrap().to_string(),
        }
    }

    /// A Payment API purchase through the gateway as `merchant`; `partner`: a
    /// `partner-token` the client sends itself (kept as sent). Returns the answer's
    /// status and body.
    pub async fn gateway_purchase(
        &self,
        merchant: &Merchant,
        partner: Option<&str>,
        amount: &str,
        currency: &str,
        invoice: &str,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/v2/payment/purchase", self.gateway_url))
            .header("api-token", &merchant.api_token)
            .header("idempotency-key", fresh_key(invoice))
            .json(&purchase(amount, currency, invoice));
        if let Some(partner) = partner {
            request = request.header("partner-token", partner);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A Payment API refund through the gateway as `merchant`.
    pub async fn gateway_refund(&self, merchant: &Merchant, original: i64, amount: &str) -> Value {
        let answer = json(
            self.http
                .post(format!("{}/v2/payment/refund", self.gateway_url))
                .header("api-token", &merchant.api_token)
                .header("idempotency-key", fresh_key("refund"))
                .json(&json!({"originalTransactionId": original, "amount": amount,
                              "ipAddress": "192.168.1.1"})),
        )
        .await;
        assert!(answer["transactionId"].is_number() || answer["transactionId"].is_string());
        answer
    }

    /// A Payment API purchase sent straight to the simulator (no gateway, no partner
    /// token): an integration calling Helcim directly.
    pub async fn direct_purchase(
        &self,
        merchant: &Merchant,
        amount: &str,
        currency: &str,
        invoice: &str,
    ) -> i64 {
        let answer = json(
            self.http
                .post(format!("{}/v2/payment/purchase", self.sim_url))
                .header("api-token", &merchant.api_token)
                .header("idempotency-key", fresh_key(invoice))
                .json(&purchase(amount, currency, invoice)),
        )
        .await;
        id_of(&answer)
    }

    /// A sale in Helcim's own tools (`/sim/accounts/{id}/sales`): `kind` purchase or
    /// refund, `outcome` approve or decline.
    pub async fn sale(
        &self,
        merchant: &Merchant,
        amount: &str,
        currency: &str,
        invoice: &str,
        kind: &str,
        outcome: &str,
    ) -> i64 {
        let answer = json(
            self.http
                .post(format!(
                    "{}/sim/accounts/{}/sales",
                    self.sim_url, merchant.id
                ))
                .json(&json!({"amount": amount, "currency": currency,
                              "invoiceNumber": invoice, "type": kind, "outcome": outcome})),
        )
        .await;
        id_of(&answer)
    }

    /// HelcimPay.js: initialize through the gateway, then the shopper pays.
    pub async fn helcim_pay(&self, merchant: &Merchant, amount: &str, invoice: &str) -> i64 {
        let opened = json(
            self.http
                .post(format!("{}/v2/helcim-pay/initialize", self.gateway_url))
                .header("api-token", &merchant.api_token)
                .json(&json!({"paymentType": "purchase", "amount": amount,
                              "currency": "CAD", "invoiceNumber": invoice})),
        )
        .await;
        let token = opened["checkoutToken"].as_str().expect("a checkout token");
        let paid = json(
            self.http
                .post(format!("{}/sim/helcim-pay/{token}/complete", self.sim_url)),
        )
        .await;
        id_of(&paid)
    }

    /// A Smart Terminal purchase through the gateway, completed by the customer.
    pub async fn terminal(&self, merchant: &Merchant, amount: &str, invoice: &str) -> i64 {
        let devices = json(
            self.http
                .get(format!("{}/v2/devices", self.sim_url))
                .header("api-token", &merchant.api_token),
        )
        .await;
        let code = listening_device(&devices);
        let asked = self
            .http
            .post(format!(
                "{}/v2/devices/{code}/payment/purchase",
                self.gateway_url
            ))
            .header("api-token", &merchant.api_token)
            .json(&json!({"currency": "CAD", "transactionAmount": amount,
                          "invoiceNumber": invoice, "customerCode": "CST-T"}))
            .send()
            .await
            .unwrap();
        assert_eq!(asked.status(), 202, "the terminal took the request");
        let done = json(
            self.http
                .post(format!("{}/sim/devices/{code}/complete", self.sim_url)),
        )
        .await;
        id_of(&done["transaction"])
    }

    /// Posts receipts with `key`; asserts they were taken.
    pub async fn receipts(&self, key: &str, receipts: Value) {
        let response = self
            .http
            .post(format!("{}/v1/attribution/receipts", self.api_url))
            .bearer_auth(key)
            .json(&json!({ "receipts": receipts }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "receipts refused: {body}");
    }

    /// Every gap `key` may see with `query` (`month=…&status=…`), following the cursor.
    pub async fn gaps(&self, key: &str, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/attribution/gaps?{query}", self.api_url);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let response = self.http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            let page: Value = response.json().await.unwrap();
            all.extend(page["gaps"].as_array().unwrap().iter().cloned());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return all,
            }
        }
    }

    /// The month's report as JSON, with `key`.
    pub async fn report(&self, key: &str, query: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/attribution/report?{query}", self.api_url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until `ready` holds for the number `sql` counts.
    pub async fn until(
        &self,
        what: &str,
        within: Duration,
        sql: &str,
        ready: impl Fn(i64) -> bool,
    ) {
        let every = Duration::from_millis(200);
        if let Err(last) = count_reaches(&self.db.pool, within, every, sql, ready).await {
            panic!("{what}: still {last} after {within:?} ({sql})");
        }
    }

    /// When the transaction reached the ledger (the worker stored it).
    pub async fn stored_at(&self, account: &str, transaction_id: i64) -> DateTime<Utc> {
        sqlx::query_scalar(
            "SELECT COALESCE(fetched_at, updated_at) FROM card_transactions
              WHERE account_id = $1 AND transaction_id = $2 AND reconciliation_status <> 'pending'",
        )
        .bind(account)
        .bind(transaction_id)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    /// When the latest evidence about `transaction_id` (or with `invoice`) was recorded.
    pub async fn evidence_recorded_at(
        &self,
        account: &str,
        transaction_id: Option<i64>,
        invoice: Option<&str>,
    ) -> Option<DateTime<Utc>> {
        sqlx::query_scalar(
            "SELECT max(recorded_at) FROM attribution_evidence
              WHERE account_id = $1 AND (transaction_id = $2 OR invoice_number = $3)",
        )
        .bind(account)
        .bind(transaction_id)
        .bind(invoice)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    pub async fn finish(self) {
        let AttributionStack {
            db,
            prefix,
            processes,
            clock_file,
            ..
        } = self;
        drop(processes);
        let _ = std::fs::remove_file(clock_file);
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .unwrap();
        recon_queue::Topology::new(&prefix)
            .with_retry_delays(vec![
                Duration::from_millis(200),
                Duration::from_millis(500),
                Duration::from_secs(1),
            ])
            .delete(&connection)
            .await
            .unwrap();
        db.drop_now().await;
    }
}
