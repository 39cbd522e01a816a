//! A simulator with a webhook receiver beside it, and a client that speaks to both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use recon_sim::activity::Account;
use recon_sim::limits::RateLimits;
use recon_sim::webhooks::WebhookConfig;
use recon_sim::{GenerateConfig, RunningSim, SimConfig};
use serde_json::{Value, json};

pub const TEST_PARTNER_TOKEN: &str = "f29104118c0d65";
pub const VISA: &str = "4124939999999990";

/// One webhook as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub account: String,
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether one of the signatures verifies with one of `verifier_tokens`.
    pub fn signed_by(&self, verifier_tokens: &[String]) -> bool {
        let (Some(id), Some(ts), Some(sig)) = (&self.id, &self.timestamp, &self.signature) else {
            return false;
        };
        verifier_tokens.iter().any(|token| {
            let expected = recon_sim::webhooks::sign::signature(
                token,
                id,
                ts.parse().unwrap(),
                self.body.as_bytes(),
            )
            .unwrap();
            sig.split(' ').any(|s| s == expected)
        })
    }
}

pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    pub account: Account,
    received: Arc<Mutex<Vec<Received>>>,
    receiver: actix_web::dev::ServerHandle,
}

/// A small activity, no limits unless asked, webhooks to a local receiver, delivery
/// started (so run-time events go out at once).
pub fn config() -> SimConfig {
    SimConfig {
        generate: GenerateConfig {
            transactions_per_account: 30,
            ..GenerateConfig::default()
        },
        limits: RateLimits::UNLIMITED,
        ..SimConfig::default()
    }
}

impl Harness {
    pub async fn start(mut config: SimConfig) -> Harness {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = Arc::clone(&received);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let store = Arc::clone(&store);
            App::new().route(
                "/hooks/{account}",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let store = Arc::clone(&store);
                    async move {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_string())
                        };
                        store.lock().unwrap().push(Received {
                            account: req.match_info()["account"].to_string(),
                            id: header("webhook-id"),
                            timestamp: header("webhook-timestamp"),
                            signature: header("webhook-signature"),
                            body: String::from_utf8(body.to_vec()).unwrap(),
                        });
                        HttpResponse::NoContent().finish()
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let receiver = server.handle();
        tokio::spawn(server);
        let mut webhooks =
            WebhookConfig::new(format!("http://127.0.0.1:{port}/hooks/{{account_id}}"));
        webhooks.probe = false;
        webhooks.retry_base = Duration::from_millis(50);
        config.webhooks = Some(webhooks);
        config.deliver_on_start = true;
        let sim = RunningSim::start(config).await.unwrap();
        let account = sim.state().activity.accounts[0].clone();
        Harness {
            sim,
            http: reqwest::Client::new(),
            account,
            received,
            receiver,
        }
    }

    pub async fn stop(self) {
        self.sim.stop().await;
        self.receiver.stop(false).await;
    }

    pub fn v2(&self, path: &str) -> String {
        format!("{}{path}", self.sim.api_base_url())
    }

    pub fn sim_url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.url())
    }

    /// A Payment API request with the account's token, a key and a body.
    pub async fn pay(&self, kind: &str, key: &str, body: &Value) -> reqwest::Response {
        self.post(&format!("/payment/{kind}"), Some(key), None, body)
            .await
    }

    /// A purchase ([`purchase`]) with the account's token.
    pub async fn buy(
        &self,
        key: Option<&str>,
        partner: Option<&str>,
        amount: &str,
    ) -> reqwest::Response {
        self.post("/payment/purchase", key, partner, &purchase(amount))
            .await
    }

    /// A purchase ([`purchase`]) with `token`, no partner token.
    pub async fn buy_as(&self, token: &str, key: Option<&str>, amount: &str) -> reqwest::Response {
        let body = purchase(amount).to_string();
        self.post_as(token, "/payment/purchase", key, None, body)
            .await
    }

    pub async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        partner: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        self.post_as(
            &self.account.api_token,
            path,
            key,
            partner,
            body.to_string(),
        )
        .await
    }

    pub async fn post_as(
        &self,
        token: &str,
        path: &str,
        key: Option<&str>,
        partner: Option<&str>,
        body: String,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.v2(path))
            .header("api-token", token)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(partner) = partner {
            request = request.header("partner-token", partner);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.v2(path))
            .header("api-token", &self.account.api_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(self.v2(path))
            .header("api-token", &self.account.api_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn sim_json(&self, path: &str) -> Value {
        reqwest::get(self.sim_url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn control(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.post(self.sim_url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Completes what waits on `what` (`devices/<code>` or `helcim-pay/<checkout token>`),
    /// with the given outcome or the default one.
    pub async fn complete(&self, what: &str, outcome: Option<&str>) -> (u16, Value) {
        let body = outcome.map(|outcome| json!({ "outcome": outcome }));
        self.control(&format!("/sim/{what}/complete"), body).await
    }

    /// The truth's transaction with this id.
    pub async fn truth_of(&self, id: u64) -> Value {
        let truth = self.sim_json("/sim/truth").await;
        truth["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["transactionId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("transaction {id} is not in the truth"))
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for a webhook that `matches`.
    pub async fn webhook(&self, matches: impl Fn(&Received) -> bool) -> Received {
        for _ in 0..200 {
            if let Some(found) = self.received().into_iter().find(|r| matches(r)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no matching webhook arrived; got {:?}", self.received());
    }

    /// Waits for the `cardTransaction` webhook of transaction `id`.
    pub async fn card_transaction_webhook(&self, id: u64) -> Received {
        let id = id.to_string();
        self.webhook(|r| r.json() == json!({"id": id, "type": "cardTransaction"}))
            .await
    }
}

/// A fresh idempotency key (36 characters, like a UUID).
pub fn key(n: u32) -> String {
    format!("test-key-{n:04}-0000-0000-000000000000")
}

/// A purchase body with Helcim's Visa test card.
pub fn purchase(amount: &str) -> Value {
    json!({
        "ipAddress": "192.168.1.1",
        "currency": "CAD",
        "amount": amount,
        "invoiceNumber": format!("TEST-{amount}"),
        "customerCode": "CST-TEST",
        "cardData": {"cardNumber": VISA, "cardExpiry": "0130", "cardCVV": "100"}
    })
}

/// The status of an answer and its `is-valid-partner-token` header, if any.
pub fn partner_answer(response: &reqwest::Response) -> (u16, Option<String>) {
    let header = response.headers().get("is-valid-partner-token");
    (
        response.status().as_u16(),
        header.map(|v| v.to_str().unwrap().to_string()),
    )
}

/// The transaction id in a rendered transaction (a number or a numeric string).
pub fn id_of(rendered: &Value) -> u64 {
    match &rendered["transactionId"] {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("no transactionId in {other}"),
    }
}
