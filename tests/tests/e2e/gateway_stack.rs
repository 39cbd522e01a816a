//! The simulator and a real `recon-gateway` in front of it, on a fresh database with
//! four merchants as the gateway sees them: `A` (registered, its own partner token,
//! the simulator's valid one), `B` (registered, no partner token: the gateway's
//! `HELCIM_PARTNER_TOKEN`, which the simulator rejects, is added), `C` (registered,
//! referred by `A`: `A`'s token is added) and `U` (a merchant of the simulator no
//! account has). The gateway holds only the lookup and partner-token keys.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;
use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::Row;

use recon_common::tcp_proxy::Proxy;

use crate::binaries::{Running, derived_key, free_port, metric, run_ok, wait_until_healthy};
use crate::sim::{NO_RATE_LIMITS, json, sim_accounts, start_sim};

/// The simulator's valid partner token (Helcim's test token).
pub const VALID_PARTNER_TOKEN: &str = "f29104118c0d65";
/// The gateway's `HELCIM_PARTNER_TOKEN`: one the simulator answers `0` to.
pub const DEFAULT_PARTNER_TOKEN: &str = "gateway-default-partner-token-7c1d";
/// Helcim's Visa test card.
pub const VISA: &str = "4124939999999990";

pub struct Merchant {
    pub account_id: String,
    pub api_token: String,
}

pub struct GatewayStack {
    pub db: TestDatabase,
    pub master: String,
    pub sim: Running,
    pub sim_url: String,
    pub a: Merchant,
    pub b: Merchant,
    pub c: Merchant,
    pub u: Merchant,
    pub gateway: Running,
    pub gateway_url: String,
    pub postgres_proxy: Option<Proxy>,
    pub helcim_proxy: Option<Proxy>,
    gateway_env: Vec<(&'static str, String)>,
    pub spool_dir: PathBuf,
    pub log: PathBuf,
    pub http: reqwest::Client,
}

#[derive(Default)]
pub struct GatewayOptions {
    /// The gateway reaches Postgres through a TCP proxy the test can cut.
    pub postgres_through_proxy: bool,
    /// The gateway reaches the simulator through a TCP proxy the test can cut or stall.
    pub helcim_through_proxy: bool,
    /// `RUST_LOG` of the gateway (default `info`).
    pub log_level: Option<&'static str>,
    pub extra_env: Vec<(&'static str, String)>,
}

/// One answer, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Every header but `date` (the clock), lower-cased, sorted.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl GatewayStack {
    pub async fn start(options: GatewayOptions) -> GatewayStack {
        let db = TestDatabase::create().await;
        let master = MasterKey::generate().expose_secret().to_string();
        let operator = vec![
            ("DATABASE_URL", db.url.clone()),
            ("RECON_MASTER_KEY", master.clone()),
        ];
        let flags = ["--seed", "8", "--transactions-per-account", "5"];
        let sim = start_sim(
            &[&flags[..], &NO_RATE_LIMITS, &["--terminal-delay-ms", "0"]].concat(),
            &[("RUST_LOG", "warn".to_string())],
        )
        .await;
        let http = reqwest::Client::new();
        let accounts = sim_accounts(&http, &sim.url).await;
        let merchant = |v: &Value| Merchant {
            account_id: v["accountId"].as_str().unwrap().to_string(),
            api_token: v["apiToken"].as_str().unwrap().to_string(),
        };
        let (a, b) = (merchant(&accounts[0]), merchant(&accounts[1]));
        let mut connected = Vec::new();
        for _ in 0..2 {
            let made = json(http.post(format!(
                "{}/sim/accounts/{}/connected-accounts",
                sim.url, a.account_id
            )))
            .await;
            connected.push(merchant(&made));
        }
        let u = connected.pop().unwrap();
        let c = connected.pop().unwrap();

        run_ok("reconctl", &["migrate"], &operator);
        for (m, partner) in [(&a, Some(VALID_PARTNER_TOKEN)), (&b, None), (&c, None)] {
            let mut env = operator.clone();
            env.push(("API", m.api_token.clone()));
            let mut args = vec!["accounts", "add", &m.account_id, "--api-token-env", "API"];
            if let Some(partner) = partner {
                env.push(("PARTNER", partner.to_string()));
                args.extend(["--partner-token-env", "PARTNER"]);
            }
            run_ok("reconctl", &args, &env);
        }
        sqlx::query("UPDATE accounts SET referred_by = $1 WHERE account_id = $2")
            .bind(&a.account_id)
            .bind(&c.account_id)
            .execute(&db.pool)
            .await
            .unwrap();

        let derived = run_ok("reconctl", &["keys", "derive"], &operator);
        let key = |name: &str| derived_key(&derived, name);
        let tag = format!("{:012x}", rand::rng().random::<u64>() >> 16);
        let spool_dir = std::env::temp_dir().join(format!("gateway-spool-{tag}"));
        let log = std::env::temp_dir().join(format!("gateway-{tag}.log"));
        let gateway_addr = format!("127.0.0.1:{}", free_port());
        let postgres_proxy = match options.postgres_through_proxy {
            true => Some(Proxy::start("127.0.0.1:5432").await),
            false => None,
        };
        let helcim_proxy = match options.helcim_through_proxy {
            true => Some(Proxy::start(String::leak(sim.addr.clone())).await),
            false => None,
        };
        let database_url = match &postgres_proxy {
            Some(proxy) => db
                .url
                .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port)),
            None => db.url.clone(),
        };
        let helcim_url = match &helcim_proxy {
            Some(proxy) => format!("http://127.0.0.1:{}/v2", proxy.port),
            None => format!("{}/v2", sim.url),
        };
        let mut gateway_env = vec![
            ("DATABASE_URL", database_url),
            ("RECON_LOOKUP_KEY", key("RECON_LOOKUP_KEY")),
            ("RECON_PARTNER_TOKEN_KEY", key("RECON_PARTNER_TOKEN_KEY")),
            ("HELCIM_API_BASE_URL", helcim_url),
            ("HELCIM_PARTNER_TOKEN", DEFAULT_PARTNER_TOKEN.to_string()),
            ("GATEWAY_ADDR", gateway_addr.clone()),
            ("GATEWAY_SPOOL_DIR", spool_dir.display().to_string()),
            ("GATEWAY_ACCOUNTS_WAIT", "10s".to_string()),
            ("DATABASE_ACQUIRE_TIMEOUT", "1s".to_string()),
            ("RUST_LOG", options.log_level.unwrap_or("info").to_string()),
        ];
        gateway_env.extend(options.extra_env);
        let gateway = Running::start_logged("recon-gateway", &[], &gateway_env, &log);
        let gateway_url = format!("http://{gateway_addr}");
        wait_until_healthy(&format!("{gateway_url}/readyz")).await;
        GatewayStack {
            db,
            master,
            sim_url: sim.url,
            sim: sim.running,
            a,
            b,
            c,
            u,
            gateway,
            gateway_url,
            postgres_proxy,
            helcim_proxy,
            gateway_env,
            spool_dir,
            log,
            http,
        }
    }

    /// The `api_token_lookup` the gateway stores for `token`.
    pub fn fingerprint(&self, token: &str) -> String {
        MasterKey::from_base64(&SecretString::from(self.master.clone()), "RECON_MASTER_KEY")
            .unwrap()
            .derive_lookup()
            .fingerprint(token)
    }

    /// SIGKILL, then a fresh gateway on the same address, database and spool.
    pub async fn kill_and_restart_gateway(&mut self) {
        self.gateway.stop();
        self.gateway = Running::start_logged("recon-gateway", &[], &self.gateway_env, &self.log);
        wait_until_healthy(&format!("{}/readyz", self.gateway_url)).await;
    }

    /// Sends `body` to `base` + `path` (`/v2/...`) as `token`'s merchant.
    pub async fn send(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .header("api-token", token)
            .header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_vec());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(n, _)| n.as_str() != "date")
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        headers.sort();
        Answer {
            status,
            headers,
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    /// A POST through the gateway with an idempotency key and optional partner token.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        key: Option<&str>,
        partner: Option<&str>,
        body: &Value,
    ) -> Answer {
        let mut headers = Vec::new();
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        if let Some(partner) = partner {
            headers.push(("partner-token", partner));
        }
        let body = serde_json::to_vec(body).unwrap();
        self.send(
            &self.gateway_url,
            reqwest::Method::POST,
            path,
            token,
            &headers,
            Some(&body),
        )
        .await
    }

    /// A purchase ([`purchase`]) through the gateway, with no partner token of the client's.
    pub async fn buy(&self, token: &str, key: Option<&str>, amount: &str, invoice: &str) -> Answer {
        let body = purchase(amount, invoice);
        self.post("/v2/payment/purchase", token, key, None, &body)
            .await
    }

    /// A GET through the gateway.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(
            &self.gateway_url,
            reqwest::Method::GET,
            path,
            token,
            &[],
            None,
        )
        .await
    }

    /// Asserts that the evidence table settles at exactly `n` rows within `within`.
    pub async fn expect_evidence(&self, n: i64, within: Duration) {
        assert_eq!(self.evidence_count_settles_at(n, within).await, n);
    }

    /// Waits until the evidence table holds at least `n` rows, then a little longer
    /// (so an extra row would show), and returns the count.
    pub async fn evidence_count_settles_at(&self, n: i64, within: Duration) -> i64 {
        let deadline = Instant::now() + within;
        loop {
            let count = self.evidence_count().await;
            if count >= n {
                tokio::time::sleep(Duration::from_millis(600)).await;
                return self.evidence_count().await;
            }
            assert!(
                Instant::now() < deadline,
                "evidence: {count} rows of {n} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn evidence_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM attribution_evidence")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// The evidence row of the request sent with `key` (exactly one).
    pub async fn evidence_of(&self, key: &str) -> Evidence {
        let rows = sqlx::query(
            "SELECT account_id, api_token_lookup, endpoint, partner_token_sent, partner_token_added,
                    is_valid_partner_token, outcome, response_status, transaction_id,
                    invoice_number, customer_code, amount_minor, currency::text AS currency
             FROM attribution_evidence WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_all(&self.db.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 1, "one piece of evidence for {key}");
        let row = &rows[0];
        Evidence {
            account_id: row.get("account_id"),
            api_token_lookup: row.get("api_token_lookup"),
            endpoint: row.get("endpoint"),
            sent: row.get("partner_token_sent"),
            added: row.get("partner_token_added"),
            valid: row.get("is_valid_partner_token"),
            outcome: row.get("outcome"),
            status: row.get("response_status"),
            transaction_id: row.get("transaction_id"),
            invoice_number: row.get("invoice_number"),
            amount_minor: row.get("amount_minor"),
            currency: row.get("currency"),
        }
    }

    /// A value of the gateway's `/metrics` (summed over the series matching `filter`).
    pub async fn metric(&self, name: &str, filter: &str) -> f64 {
        let url = format!("{}/metrics", self.gateway_url);
        metric(&self.http, &url, name, filter).await
    }

    pub async fn finish(self) {
        let GatewayStack {
            db,
            mut sim,
            mut gateway,
            spool_dir,
            log,
            ..
        } = self;
        let _ = gateway.child.kill();
        let _ = sim.child.kill();
        let _ = std::fs::remove_dir_all(spool_dir);
        let _ = std::fs::remove_file(log);
        db.drop_now().await;
    }
}

/// An evidence row, as the tests check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub account_id: Option<String>,
    pub api_token_lookup: Option<String>,
    pub endpoint: String,
    pub sent: bool,
    pub added: bool,
    pub valid: Option<i16>,
    pub outcome: String,
    pub status: Option<i16>,
    pub transaction_id: Option<i64>,
    pub invoice_number: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

/// An idempotency key of Helcim's shape (25–36 characters), unique per call.
pub fn fresh_key(tag: &str) -> String {
    format!("{tag}-{:032x}", rand::rng().random::<u128>())[..36].to_string()
}

/// A purchase with Helcim's Visa test card.
pub fn purchase(amount: &str, invoice: &str) -> Value {
    json!({
        "ipAddress": "192.168.1.1",
        "currency": "CAD",
        "amount": amount,
        "invoiceNumber": invoice,
        "customerCode": "CST-GW",
        "cardData": {"cardNumber": VISA, "cardExpiry": "0130", "cardCVV": "100"}
    })
}

/// The transaction id in an answer (a number or a numeric string).
pub fn transaction_id(answer: &Answer) -> i64 {
    match &answer.json()["transactionId"] {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("no transactionId in {other}"),
    }
}
