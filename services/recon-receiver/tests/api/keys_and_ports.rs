//! Which keys the receiver holds, what it does with an account it cannot read, secrets
//! in bodies, and the separate metrics port: against real Postgres and RabbitMQ.

use std::sync::Arc;

use recon_receiver::accounts::{AccountSource, DatabaseAccounts, StaticAccounts};
use recon_receiver::config::{Settings, verifier_keys_only};
use recon_receiver::startup::{Application, Clock};
use recon_store::accounts::NewAccount;
use recon_store::intake::{IntakeSecretKey, IntakeSecretKeys};
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, Purpose, SecretCipher};
use secrecy::SecretString;

use crate::helpers::*;

fn master() -> MasterKey {
    MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_string())
}

/// The value of the sample of `name` whose labels include every `labels` pair.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn start(
    settings: &Settings,
    sources: Vec<Box<dyn AccountSource>>,
    prefix: String,
) -> (TestReceiver, Option<String>) {
    let app = Application::build_with_clock(settings, sources, Clock::System)
        .await
        .unwrap();
    let metrics_url = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let receiver = TestReceiver {
        url: format!("http://127.0.0.1:{}", app.port()),
        topology: recon_queue::Topology::new(prefix),
        handle: app.handle(),
        http: reqwest::Client::new(),
    };
    tokio::spawn(app.run_until_stopped());
    (receiver, metrics_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_with_only_the_verifier_key_verifies_and_answers_503_for_an_account_it_cannot_read()
 {
    let db = TestDatabase::create().await;
    let key = master();
    let operator = AccountStore::new(
        db.pool.clone(),
        Arc::new(SecretCipher::new(key.clone(), vec![])),
    );
    operator
        .add(NewAccount {
            account_id: "readable".into(),
            verifier_token: Some(secret(TOKEN_NEW)),
            api_token: Some(secret("merchant-api-token")),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    // Encrypted under a key this deployment was never given.
    let elsewhere = AccountStore::new(
        db.pool.clone(),
        Arc::new(SecretCipher::new(master(), vec![])),
    );
    elsewhere
        .add(NewAccount {
            account_id: "unreadable".into(),
            verifier_token: Some(secret(TOKEN_NEW)),
            ..NewAccount::default()
        })
        .await
        .unwrap();

    // What the receiver's deployment is given: RECON_VERIFIER_KEY alone.
    let cipher = verifier_keys_only(SecretCipher::from_data_keys(
        vec![key.derive(Purpose::Verifier)],
        vec![],
    ))
    .unwrap();
    let receiver_store = AccountStore::new(db.pool.clone(), Arc::new(cipher));
    let api_tokens = receiver_store.api_tokens().await.unwrap();
    assert!(
        api_tokens.iter().all(|(_, token)| token.is_err()),
        "the receiver's keys cannot decrypt an API token"
    );

    let prefix = unique_prefix();
    let settings = Settings::for_tests(&prefix);
    let sources: Vec<Box<dyn AccountSource>> = vec![Box::new(DatabaseAccounts(receiver_store))];
    let (receiver, _) = start(&settings, sources, prefix).await;

    let ok = receiver
        .send_to("readable", &card_transaction("msg_keys_1", 1))
        .await;
    assert_eq!(ok.status(), 200);
    let unavailable = receiver
        .send_to("unreadable", &card_transaction("msg_keys_2", 2))
        .await;
    assert_eq!(
        unavailable.status(),
        503,
        "never 404 or 401: Helcim must retry"
    );
    assert!(unavailable.headers().contains_key("retry-after"));
    let metrics = receiver.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "receiver_account_secrets_unreadable",
            &[("account", "unreadable")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "receiver_account_secrets_unreadable",
            &[("account", "readable")]
        ),
        Some(0.0)
    );
    assert_eq!(receiver.work_queue_depth().await, 1);
    receiver.finish().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_addr_the_webhook_port_serves_only_webhooks_and_unknown_ids_never_become_labels()
 {
    let prefix = unique_prefix();
    let mut settings = Settings::for_tests(&prefix);
    settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let sources: Vec<Box<dyn AccountSource>> = vec![Box::new(
        StaticAccounts::single(ACCOUNT, TOKEN_NEW).unwrap(),
    )];
    let (receiver, metrics_url) = start(&settings, sources, prefix).await;
    let metrics_url = metrics_url.expect("a metrics port");
    let get = |url: String| {
        let http = receiver.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    for path in ["/metrics", "/readyz", "/healthz"] {
        assert_eq!(
            get(format!("{}{path}", receiver.url)).await,
            404,
            "{path} on the webhook port"
        );
        assert_eq!(
            get(format!("{metrics_url}{path}")).await,
            200,
            "{path} on the metrics port"
        );
    }
    assert_eq!(
        receiver
            .send(&card_transaction("msg_port_1", 1))
            .await
            .status(),
        200
    );
    let webhook_on_metrics_port = receiver
        .http
        .post(format!("{metrics_url}/webhooks/helcim/{ACCOUNT}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook_on_metrics_port.status(), 404);

    // Caller-chosen account ids, signed or not, stale or not: never a label value.
    let chosen = "attacker-chosen-label-x1";
    let stale = delivery(
        "msg_port_2",
        r#"{"type":"cardTransaction"}"#,
        TOKEN_NEW,
        now() - 400,
    );
    assert_eq!(receiver.send_to(chosen, &stale).await.status(), 404);
    assert_eq!(
        receiver
            .send_to(chosen, &card_transaction("msg_port_3", 3))
            .await
            .status(),
        404
    );
    let metrics = receiver
        .http
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(chosen), "{metrics}");
    assert!(metrics.contains(&format!("account=\"{ACCOUNT}\"")));
    receiver.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_late_delivery_is_refused_and_counted_by_account_a_forged_one_is_not() {
    let receiver = spawn_receiver(Options::default()).await;
    let labels = [("account", ACCOUNT), ("direction", "old")];
    let before = sample(
        &receiver.metrics().await,
        "receiver_stale_timestamps_total",
        &labels,
    )
    .unwrap_or(0.0);
    let late = delivery(
        "msg_late_1",
        r#"{"id":"7","type":"cardTransaction"}"#,
        TOKEN_NEW,
        now() - 400,
    );
    let response = receiver.send(&late).await;
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("s old; more than 300 s is refused")
    );
    let forged = delivery(
        "msg_late_2",
        r#"{"id":"8","type":"cardTransaction"}"#,
        TOKEN_UNKNOWN,
        now() - 400,
    );
    assert_eq!(receiver.send(&forged).await.status(), 401);
    let after = sample(
        &receiver.metrics().await,
        "receiver_stale_timestamps_total",
        &labels,
    );
    assert_eq!(after, Some(before + 1.0), "only the signed one counts");
    receiver.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_account_token_is_queued_sealed_and_a_receiver_without_the_intake_key_answers_503()
 {
    let token = "conn-api-token-Zq81xT";
    let body = format!(
        r#"{{"type":"connectedAccount","data":{{"connectedAccountId":"ca-981","apiToken":"{token}","status":"APPROVED"}}}}"#
    );
    let private = IntakeSecretKey::derive(&master());

    let prefix = unique_prefix();
    let mut settings = Settings::for_tests(&prefix);
    settings.intake_public_key = Some(private.public().to_base64());
    let sources: Vec<Box<dyn AccountSource>> = vec![Box::new(
        StaticAccounts::single(ACCOUNT, TOKEN_NEW).unwrap(),
    )];
    let (receiver, _) = start(&settings, sources, prefix).await;
    let sent = delivery("msg_connected_1", &body, TOKEN_NEW, now());
    assert_eq!(receiver.send(&sent).await.status(), 200);
    let queued = receiver.drain_work_queue().await;
    assert_eq!(queued.len(), 1);
    let envelope = &queued[0].1;
    let raw = String::from_utf8(envelope.raw_body.clone()).unwrap();
    assert!(!raw.contains(token), "{raw}");
    assert!(
        raw.contains(r#""apiToken":"[sealed]""#) && raw.contains("ca-981"),
        "{raw}"
    );
    let sealed = envelope.sealed_secrets.as_deref().expect("sealed secrets");
    assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()));
    let opened = IntakeSecretKeys::new(private, vec![]).open(sealed).unwrap();
    assert_eq!(
        String::from_utf8(opened).unwrap(),
        format!(r#"["{token}"]"#)
    );
    receiver.finish().await;

    // No intake key: refused with 503 (Helcim retries), never queued in clear.
    let without = spawn_receiver(Options::default()).await;
    let response = without
        .send(&delivery("msg_connected_2", &body, TOKEN_NEW, now()))
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(without.work_queue_depth().await, 0);
    without.finish().await;
}
