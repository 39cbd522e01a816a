//! `recon-gateway` in front of the simulator: transparent (every kind of answer comes
//! back byte for byte as the simulator gives it directly), one piece of evidence per
//! payment request with what Helcim answered, and no card data or token anywhere in
//! its trace logs or the database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway_stack::{
    Answer, DEFAULT_PARTNER_TOKEN, GatewayOptions, GatewayStack, VALID_PARTNER_TOKEN, VISA,
    fresh_key, purchase, transaction_id,
};

/// Sends the same request (same idempotency key, same bytes) to the simulator directly
/// and then through the gateway, and checks the answers are the same. The simulator
/// replays the first answer to a repeated key byte for byte, so the second request
/// must come back exactly as the first did.
async fn same_both_ways(
    s: &GatewayStack,
    what: &str,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut headers = vec![("partner-token", VALID_PARTNER_TOKEN)];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    let direct = s
        .send(
            &format!("{}/v2", s.sim_url),
            Method::POST,
            path,
            token,
            &headers,
            Some(&bytes),
        )
        .await;
    let through = s
        .send(
            &format!("{}/v2", s.gateway_url),
            Method::POST,
            path,
            token,
            &headers,
            Some(&bytes),
        )
        .await;
    assert_eq!(through, direct, "{what}: through the gateway vs directly");
    through
}

async fn get_both_ways(s: &GatewayStack, path: &str, token: &str) -> Answer {
    let direct = s
        .send(
            &format!("{}/v2", s.sim_url),
            Method::GET,
            path,
            token,
            &[],
            None,
        )
        .await;
    let through = s
        .send(
            &format!("{}/v2", s.gateway_url),
            Method::GET,
            path,
            token,
            &[],
            None,
        )
        .await;
    assert_eq!(through, direct, "GET {path}");
    through
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payment_kind_answers_through_the_gateway_byte_for_byte_as_the_simulator_does() {
    let s = GatewayStack::start(GatewayOptions::default()).await;
    let a = s.a.api_token.clone();

    let bought = same_both_ways(
        &s,
        "purchase",
        "/payment/purchase",
        &a,
        Some(&fresh_key("t-pur")),
        &purchase("30.00", "T-1"),
    )
    .await;
    assert_eq!(bought.status, 200);
    assert_eq!(bought.header("is-valid-partner-token"), Some("1"));
    let purchase_id = transaction_id(&bought);
    let preauth = same_both_ways(
        &s,
        "preauth",
        "/payment/preauth",
        &a,
        Some(&fresh_key("t-pre")),
        &purchase("20.00", "T-2"),
    )
    .await;
    assert_eq!(preauth.status, 200);
    let capture = same_both_ways(
        &s,
        "capture",
        "/payment/capture",
        &a,
        Some(&fresh_key("t-cap")),
        &json!({"preAuthTransactionId": transaction_id(&preauth), "amount": "15.00", "ipAddress": "192.168.1.1"}),
    )
    .await;
    assert_eq!(capture.status, 200);
    let mut verify = purchase("0", "T-3");
    verify.as_object_mut().unwrap().remove("amount");
    assert_eq!(
        same_both_ways(
            &s,
            "verify",
            "/payment/verify",
            &a,
            Some(&fresh_key("t-ver")),
            &verify
        )
        .await
        .status,
        200
    );
    let refund =
        json!({"originalTransactionId": purchase_id, "amount": "1.00", "ipAddress": "192.168.1.1"});
    assert_eq!(
        same_both_ways(
            &s,
            "refund",
            "/payment/refund",
            &a,
            Some(&fresh_key("t-ref")),
            &refund
        )
        .await
        .status,
        200
    );
    let to_reverse = same_both_ways(
        &s,
        "purchase to reverse",
        "/payment/purchase",
        &a,
        Some(&fresh_key("t-pu2")),
        &purchase("7.00", "T-4"),
    )
    .await;
    let reverse =
        json!({"cardTransactionId": transaction_id(&to_reverse), "ipAddress": "192.168.1.1"});
    assert_eq!(
        same_both_ways(
            &s,
            "reverse",
            "/payment/reverse",
            &a,
            Some(&fresh_key("t-rev")),
            &reverse
        )
        .await
        .status,
        200
    );
    assert_eq!(
        same_both_ways(
            &s,
            "withdraw",
            "/payment/withdraw",
            &a,
            Some(&fresh_key("t-wdr")),
            &purchase("3.00", "T-5")
        )
        .await
        .status,
        200
    );
    let checkout = json!({"paymentType": "purchase", "amount": "9.99", "currency": "CAD", "invoiceNumber": "T-6"});
    let initialized = same_both_ways(
        &s,
        "HelcimPay.js initialize",
        "/helcim-pay/initialize",
        &a,
        Some(&fresh_key("t-hpi")),
        &checkout,
    )
    .await;
    assert_eq!(initialized.status, 200);
    assert!(initialized.json()["checkoutToken"].is_string());

    let devices = get_both_ways(&s, "/devices", &a).await;
    let code = devices
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "LISTENING")
        .map(|d| d["code"].as_str().unwrap().to_string())
        .expect("a listening device");
    let on_terminal = json!({"currency": "CAD", "transactionAmount": "4.00", "invoiceNumber": "T-7", "customerCode": "CST-GW"});
    let terminal = same_both_ways(
        &s,
        "terminal purchase",
        &format!("/devices/{code}/payment/purchase"),
        &a,
        Some(&fresh_key("t-dvp")),
        &on_terminal,
    )
    .await;
    assert_eq!(terminal.status, 202);
    let busy = same_both_ways(
        &s,
        "a busy terminal",
        &format!("/devices/{code}/payment/refund"),
        &a,
        Some(&fresh_key("t-dvb")),
        &on_terminal,
    )
    .await;
    assert_eq!(busy.status, 409, "Device Not Listening");
    let completed = s
        .http
        .post(format!("{}/sim/devices/{code}/complete", s.sim_url))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);
    assert_eq!(
        same_both_ways(
            &s,
            "terminal refund",
            &format!("/devices/{code}/payment/refund"),
            &a,
            Some(&fresh_key("t-dvr")),
            &on_terminal
        )
        .await
        .status,
        202
    );

    let plans = same_both_ways(
        &s,
        "payment plan",
        "/payment-plans",
        &a,
        Some(&fresh_key("t-pln")),
        &json!({"paymentPlans": [{"name": "Gold", "recurringAmount": 10}]}),
    )
    .await;
    assert_eq!(plans.status, 200);
    let plan_id = plans.json()["data"][0]["id"].clone();
    assert_eq!(
        same_both_ways(
            &s,
            "subscription",
            "/subscriptions",
            &a,
            Some(&fresh_key("t-sub")),
            &json!({"subscriptions": [{"paymentPlanId": plan_id, "customerCode": "CST-GW"}]})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        same_both_ways(
            &s,
            "add-on",
            "/add-ons",
            &a,
            Some(&fresh_key("t-add")),
            &json!({"addOns": [{"name": "Extra", "amount": 5}]})
        )
        .await
        .status,
        200
    );

    // Errors: validation, an unknown token, a reused key with another body, a decline.
    let invalid = same_both_ways(
        &s,
        "a 400",
        "/payment/purchase",
        &a,
        Some(&fresh_key("t-bad")),
        &json!({"amount": "5.00"}),
    )
    .await;
    assert_eq!(invalid.status, 400);
    let unknown = same_both_ways(
        &s,
        "a 401",
        "/payment/purchase",
        "not-a-token",
        Some(&fresh_key("t-401")),
        &purchase("5.00", "T-8"),
    )
    .await;
    assert_eq!(unknown.status, 401);
    let key = fresh_key("t-409");
    same_both_ways(
        &s,
        "the first use of a key",
        "/payment/purchase",
        &a,
        Some(&key),
        &purchase("6.00", "T-9"),
    )
    .await;
    let conflict = same_both_ways(
        &s,
        "a 409",
        "/payment/purchase",
        &a,
        Some(&key),
        &purchase("6.01", "T-9"),
    )
    .await;
    assert_eq!(conflict.status, 409);
    let declined = same_both_ways(
        &s,
        "a decline",
        "/payment/purchase",
        &a,
        Some(&fresh_key("t-dec")),
        &purchase("12.05", "T-10"),
    )
    .await;
    assert_eq!(declined.status, 500);
    assert!(
        declined.json()["errors"]
            .as_str()
            .unwrap()
            .contains("Declined")
    );

    // Reads, queries included, and paths the simulator does not know.
    get_both_ways(&s, &format!("/card-transactions/{purchase_id}"), &a).await;
    let listed = get_both_ways(&s, "/card-transactions?invoiceNumber=T-1&limit=10", &a).await;
    assert!(!listed.json().as_array().unwrap().is_empty());
    get_both_ways(&s, "/card-batches?collect-stats=true", &a).await;
    get_both_ways(&s, "/connection-test", &a).await;
    assert_eq!(get_both_ways(&s, "/no-such-endpoint", &a).await.status, 404);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_payment_request_leaves_exactly_one_piece_of_evidence_with_what_helcim_answered() {
    let s = GatewayStack::start(GatewayOptions::default()).await;
    let (a, b, c, u) = (
        &s.a.api_token,
        &s.b.api_token,
        &s.c.api_token,
        &s.u.api_token,
    );

    // A's own token is added; retries with the same key and body are one request.
    let k_a = fresh_key("e-a");
    let first = s
        .post(
            "/v2/payment/purchase",
            a,
            Some(&k_a),
            None,
            &purchase("11.00", "E-1"),
        )
        .await;
    assert_eq!(
        (first.status, first.header("is-valid-partner-token")),
        (200, Some("1"))
    );
    for _ in 0..2 {
        assert_eq!(
            s.post(
                "/v2/payment/purchase",
                a,
                Some(&k_a),
                None,
                &purchase("11.00", "E-1")
            )
            .await,
            first
        );
    }
    // The same key with another body: Helcim's 409, another request.
    let k_conflict = fresh_key("e-c");
    s.post(
        "/v2/payment/purchase",
        a,
        Some(&k_conflict),
        None,
        &purchase("2.00", "E-2"),
    )
    .await;
    let conflict = s
        .post(
            "/v2/payment/purchase",
            a,
            Some(&k_conflict),
            None,
            &purchase("2.01", "E-2"),
        )
        .await;
    assert_eq!(conflict.status, 409);
    // B has no partner token: the gateway's default is added, and Helcim rejects it.
    let k_b = fresh_key("e-b");
    let by_b = s
        .post(
            "/v2/payment/purchase",
            b,
            Some(&k_b),
            None,
            // B's terminals take USD only.
            &json!({"ipAddress": "192.168.1.1", "currency": "USD", "amount": "12.00",
                    "cardData": {"cardNumber": VISA, "cardExpiry": "0130", "cardCVV": "100"}}),
        )
        .await;
    assert_eq!(
        (by_b.status, by_b.header("is-valid-partner-token")),
        (200, Some("0")),
        "{}",
        String::from_utf8_lossy(&by_b.body)
    );
    // A client's own token is kept as sent, even a wrong one.
    let k_sent = fresh_key("e-s");
    let sent = s
        .post(
            "/v2/payment/purchase",
            a,
            Some(&k_sent),
            Some("the-clients-own-token"),
            &purchase("13.00", "E-4"),
        )
        .await;
    assert_eq!(sent.header("is-valid-partner-token"), Some("0"));
    // C has none of its own but was referred by A: A's token is added.
    let k_c = fresh_key("e-r");
    let by_c = s
        .post(
            "/v2/payment/purchase",
            c,
            Some(&k_c),
            None,
            &purchase("14.00", "E-5"),
        )
        .await;
    assert_eq!(
        (by_c.status, by_c.header("is-valid-partner-token")),
        (200, Some("1"))
    );
    // U is no registered account: forwarded, evidence kept under its fingerprint.
    let k_u = fresh_key("e-u");
    let by_u = s
        .post(
            "/v2/payment/purchase",
            u,
            Some(&k_u),
            None,
            &purchase("15.00", "E-6"),
        )
        .await;
    assert_eq!(by_u.status, 200);
    // Without an idempotency key every request is its own (Helcim refuses them: 400).
    for _ in 0..2 {
        let refused = s
            .post(
                "/v2/payment/purchase",
                a,
                None,
                None,
                &purchase("16.00", "E-7"),
            )
            .await;
        assert_eq!(refused.status, 400);
    }
    // A decline (500), HelcimPay.js and a terminal.
    let k_decline = fresh_key("e-d");
    assert_eq!(
        s.post(
            "/v2/payment/purchase",
            a,
            Some(&k_decline),
            None,
            &purchase("17.05", "E-8")
        )
        .await
        .status,
        500
    );
    let k_hpi = fresh_key("e-h");
    let checkout = json!({"paymentType": "purchase", "amount": 18.5, "currency": "USD", "invoiceNumber": "E-9"});
    assert_eq!(
        s.post(
            "/v2/helcim-pay/initialize",
            a,
            Some(&k_hpi),
            None,
            &checkout
        )
        .await
        .status,
        200
    );
    let devices: Value = s
        .send(&s.gateway_url, Method::GET, "/v2/devices", a, &[], None)
        .await
        .json();
    let code = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "LISTENING")
        .unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let k_dev = fresh_key("e-t");
    let on_terminal = json!({"currency": "CAD", "transactionAmount": "19.00", "invoiceNumber": "E-10", "customerCode": "CST-GW"});
    assert_eq!(
        s.post(
            &format!("/v2/devices/{code}/payment/purchase"),
            a,
            Some(&k_dev),
            None,
            &on_terminal
        )
        .await
        .status,
        202
    );
    // Reads leave no evidence.
    s.send(
        &s.gateway_url,
        Method::GET,
        "/v2/card-transactions?invoiceNumber=E-1",
        a,
        &[],
        None,
    )
    .await;

    assert_eq!(
        s.evidence_count_settles_at(12, Duration::from_secs(20))
            .await,
        12
    );
    let e = s.evidence_of(&k_a).await;
    assert_eq!(e.account_id.as_deref(), Some(s.a.account_id.as_str()));
    assert_eq!(e.api_token_lookup, Some(s.fingerprint(a)));
    assert_eq!(
        (e.endpoint.as_str(), e.sent, e.added, e.valid),
        ("payment/purchase", false, true, Some(1))
    );
    assert_eq!((e.outcome.as_str(), e.status), ("answered", Some(200)));
    assert_eq!(e.transaction_id, Some(transaction_id(&first)));
    assert_eq!(e.invoice_number.as_deref(), Some("E-1"));
    assert_eq!(
        (e.amount_minor, e.currency.as_deref()),
        (Some(1_100), Some("CAD"))
    );

    let rows: Vec<(Option<i16>, Option<String>)> = sqlx::query_as(
        "SELECT response_status, invoice_number FROM attribution_evidence WHERE idempotency_key = $1 ORDER BY response_status",
    )
    .bind(&k_conflict)
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (Some(200), Some("E-2".into())),
            (Some(409), Some("E-2".into()))
        ]
    );

    let e = s.evidence_of(&k_b).await;
    assert_eq!((e.sent, e.added, e.valid), (false, true, Some(0)));
    assert_eq!(e.transaction_id, Some(transaction_id(&by_b)));
    let e = s.evidence_of(&k_sent).await;
    assert_eq!((e.sent, e.added, e.valid), (true, false, Some(0)));
    let e = s.evidence_of(&k_c).await;
    assert_eq!(e.account_id.as_deref(), Some(s.c.account_id.as_str()));
    assert_eq!((e.sent, e.added, e.valid), (false, true, Some(1)));
    let e = s.evidence_of(&k_u).await;
    assert_eq!(e.account_id, None, "unregistered");
    assert_eq!(e.api_token_lookup, Some(s.fingerprint(u)));
    assert_eq!(
        (e.added, e.valid),
        (true, Some(0)),
        "the default token was added"
    );
    assert_eq!(e.transaction_id, Some(transaction_id(&by_u)));
    let keyless: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attribution_evidence WHERE idempotency_key IS NULL AND response_status = 400",
    )
    .fetch_one(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(keyless, 2);
    let e = s.evidence_of(&k_decline).await;
    assert_eq!(
        (e.status, e.transaction_id, e.amount_minor),
        (Some(500), None, Some(1_705))
    );
    let e = s.evidence_of(&k_hpi).await;
    assert_eq!(e.endpoint, "helcim-pay/initialize");
    assert_eq!(
        (e.amount_minor, e.currency.as_deref(), e.transaction_id),
        (Some(1_850), Some("USD"), None)
    );
    let e = s.evidence_of(&k_dev).await;
    assert_eq!(
        (e.endpoint.as_str(), e.status, e.amount_minor),
        ("devices/payment/purchase", Some(202), Some(1_900))
    );

    assert!(
        s.metric("gateway_partner_token_answers_total", "answer=\"1\"")
            .await
            >= 4.0
    );
    assert!(
        s.metric("gateway_partner_token_answers_total", "answer=\"0\"")
            .await
            >= 3.0
    );
    assert!(s.metric("gateway_requests_total", "outcome=\"2xx\"").await >= 8.0);
    assert!(s.metric("gateway_added_seconds_count", "").await >= 14.0);
    assert_eq!(s.metric("gateway_spool_depth", "").await, 0.0);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_outside_v2_gets_a_json_404_and_an_oversized_body_a_json_413() {
    let s = GatewayStack::start(GatewayOptions {
        extra_env: vec![("GATEWAY_MAX_BODY_BYTES", "1024".to_string())],
        ..GatewayOptions::default()
    })
    .await;
    let outside = s
        .send(
            &s.gateway_url,
            Method::GET,
            "/v1/payment/purchase",
            &s.a.api_token,
            &[],
            None,
        )
        .await;
    assert_eq!(outside.status, 404);
    assert_eq!(outside.json()["error"], "not_found");
    assert!(outside.json()["message"].as_str().unwrap().contains("/v2/"));
    let big = json!({"amount": "1.00", "currency": "CAD", "padding": "x".repeat(2_000)});
    let refused = s
        .post(
            "/v2/payment/purchase",
            &s.a.api_token,
            Some(&fresh_key("big")),
            None,
            &big,
        )
        .await;
    assert_eq!(refused.status, 413);
    assert_eq!(refused.json()["error"], "body_too_large");
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("GATEWAY_MAX_BODY_BYTES")
    );
    let stats: Value = s
        .http
        .get(format!(
            "{}/sim/truth?account={}",
            s.sim_url, s.a.account_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        stats["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["madeBy"].is_null()),
        "nothing reached the simulator"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.evidence_count().await, 0);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_card_data_or_token_is_in_any_trace_log_line_or_stored_row() {
    let s = GatewayStack::start(GatewayOptions {
        log_level: Some("trace"),
        ..GatewayOptions::default()
    })
    .await;
    let bought = s
        .post(
            "/v2/payment/purchase",
            &s.a.api_token,
            Some(&fresh_key("s-1")),
            None,
            &purchase("21.00", "S-1"),
        )
        .await;
    assert_eq!(bought.status, 200);
    let card_token = bought.json()["cardToken"]
        .as_str()
        .expect("a card token")
        .to_string();
    let by_token = json!({"ipAddress": "192.168.1.1", "currency": "CAD", "amount": "22.00", "cardData": {"cardToken": card_token}});
    assert_eq!(
        s.post(
            "/v2/payment/purchase",
            &s.a.api_token,
            Some(&fresh_key("s-2")),
            Some("client-sent-partner-tok"),
            &by_token
        )
        .await
        .status,
        200
    );
    for token in [&s.b.api_token, &s.c.api_token, &s.u.api_token] {
        s.post(
            "/v2/payment/preauth",
            token,
            Some(&fresh_key("s-3")),
            None,
            &purchase("23.00", "S-3"),
        )
        .await;
    }
    s.post(
        "/v2/payment/purchase",
        &s.a.api_token,
        Some(&fresh_key("s-4")),
        None,
        &purchase("24.05", "S-4"),
    )
    .await;
    // A card token in a query string.
    s.send(
        &s.gateway_url,
        Method::GET,
        &format!("/v2/card-transactions?cardToken={card_token}"),
        &s.a.api_token,
        &[],
        None,
    )
    .await;
    s.evidence_count_settles_at(6, Duration::from_secs(20))
        .await;

    let secrets = [
        VISA,
        &card_token,
        &s.a.api_token,
        &s.b.api_token,
        &s.c.api_token,
        &s.u.api_token,
        VALID_PARTNER_TOKEN,
        DEFAULT_PARTNER_TOKEN,
        "client-sent-partner-tok",
        "cardCVV",
        "cardExpiry",
        "cardData",
        "cardNumber",
    ];
    let logs = std::fs::read_to_string(&s.log).unwrap();
    assert!(logs.lines().count() > 50, "trace logs were captured");
    assert!(logs.contains("payment request forwarded"), "a control");
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} in the gateway's logs");
        assert_eq!(
            crate::secrets::hits_in_tables(&s.db, secret).await,
            Vec::<String>::new(),
            "{secret} in a table"
        );
    }
    let spool_files: Vec<_> = std::fs::read_dir(&s.spool_dir).unwrap().flatten().collect();
    for file in spool_files {
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in the spool");
        }
    }
    s.finish().await;
}
