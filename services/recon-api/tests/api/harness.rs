use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::{DateTime, Utc};
use recon_api::{AppState, Settings};
use recon_store::api_keys::{self, Role};
use recon_store::testing::TestDatabase;
use secrecy::{ExposeSecret, SecretString};

pub const ACCOUNT: &str = "acct-a";
pub const OTHER_ACCOUNT: &str = "acct-b";
pub const TRANSACTION: i64 = 9_001;

/// Card and customer values a partner must never see.
pub const CARD_NUMBER: &str = "411111******1111";
pub const CARD_TOKEN: &str = "tok-card-5f3a9c";
pub const HOLDER: &str = "Jo Cardholder";
pub const CUSTOMER_CODE: &str = "CST-7731";
pub const APPROVAL_CODE: &str = "T9X2KQ";
pub const INVOICE: &str = "INV-55012";
pub const HELCIM_USER: &str = "clerk@merchant.example";

pub struct Harness {
    pub db: TestDatabase,
    pub url: String,
    pub ops_url: Option<String>,
    pub state: web::Data<AppState>,
    pub http: reqwest::Client,
    handles: Vec<actix_web::dev::ServerHandle>,
}

#[derive(Clone, Copy)]
pub struct Options {
    pub failures_per_minute: u32,
    pub metrics_addr: bool,
    /// Trust `X-Forwarded-For` from the test client (127.0.0.1), as from an ingress.
    pub behind_proxy: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            failures_per_minute: 1_000,
            metrics_addr: false,
            behind_proxy: false,
        }
    }
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let db = TestDatabase::create().await;
        seed_ledger(&db).await;
        let settings = Settings {
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: options.metrics_addr.then(|| "127.0.0.1:0".parse().unwrap()),
            database_url: SecretString::from(db.url.clone()),
            auth_failures_per_minute: NonZeroU32::new(options.failures_per_minute).unwrap(),
            trusted_proxies: if options.behind_proxy {
                vec!["127.0.0.0/8".parse().unwrap()]
            } else {
                vec![]
            },
            log_format: Default::default(),
            close_timezone: Default::default(),
            clock_offset_file: None,
        };
        let api = recon_api::build(&settings).await.expect("recon-api starts");
        let url = format!("http://127.0.0.1:{}", api.port);
        let ops_url = api
            .ops
            .as_ref()
            .map(|(_, port)| format!("http://127.0.0.1:{port}"));
        let state = api.state.clone();
        let handles = api.handles();
        tokio::spawn(api.run());
        Harness {
            db,
            url,
            ops_url,
            state,
            http: reqwest::Client::new(),
            handles,
        }
    }

    pub async fn key(&self, role: Role, accounts: Option<&[&str]>) -> String {
        self.key_expiring(role, accounts, None).await
    }

    pub async fn key_expiring(
        &self,
        role: Role,
        accounts: Option<&[&str]>,
        expires_at: Option<DateTime<Utc>>,
    ) -> String {
        let accounts = accounts.map(|a| a.iter().map(|s| s.to_string()).collect());
        api_keys::create(&self.db.pool, role, accounts, expires_at)
            .await
            .unwrap()
            .key
            .expose_secret()
            .to_string()
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    pub async fn transaction(&self, key: &str) -> reqwest::Response {
        self.get(
            &format!("/v1/accounts/{ACCOUNT}/transactions/{TRANSACTION}"),
            Some(key),
        )
        .await
    }

    pub async fn stop(self) {
        for handle in self.handles {
            handle.stop(false).await;
        }
        self.state.pool.close().await;
        self.state.readiness.close().await;
        self.db.drop_now().await;
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {within:?}");
}

/// One reconciled transaction with every card field filled.
async fn seed_ledger(db: &TestDatabase) {
    sqlx::query(
        "INSERT INTO card_transactions (account_id, transaction_id, card_batch_id, created_at, \
             created_at_local, status, type, amount_minor, currency, card_type, \
             card_number_masked, card_token, card_holder_name, customer_code, invoice_number, \
             approval_code, avs_response, cvv_response, helcim_user, raw, fetched_at, \
             reconciliation_status) \
         VALUES ($1, $2, 77, now(), '2026-11-01 10:00:00', 'APPROVED', 'purchase', 12345, \
                 'CAD', 'VI', $3, $4, $5, $6, $7, $8, 'Y', 'M', $9, \
                 json_build_object('cardHolderName', $5::text, 'cardToken', $4::text), \
                 now(), 'matched')",
    )
    .bind(ACCOUNT)
    .bind(TRANSACTION)
    .bind(CARD_NUMBER)
    .bind(CARD_TOKEN)
    .bind(HOLDER)
    .bind(CUSTOMER_CODE)
    .bind(INVOICE)
    .bind(APPROVAL_CODE)
    .bind(HELCIM_USER)
    .execute(&db.pool)
    .await
    .unwrap();
}
