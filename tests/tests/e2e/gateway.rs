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
use crate::sim::{json, listening_device};

/// Sends the same request to the simulator directly and then through the gateway, and
/// checks the answers are the same.
async fn both_ways(
    s: &GatewayStack,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let (sim, gateway) = (format!("{}/v2", s.sim_url), format!("{}/v2", s.gateway_url));
    let direct = s
        .send(&sim, method.clone(), path, token, headers, body)
        .await;
    let through = s
        .send(&gateway, method.clone(), path, token, headers, body)
        .await;
    assert_eq!(
        through, direct,
        "{method} {path}: through the gateway vs directly"
    );
    through
}

/// A POST both ways with the same idempotency key and the same bytes. The simulator
/// replays the first answer to a repeated key byte for byte, so the second request
/// must come back exactly as the first did.
async fn same_both_ways(
    s: &GatewayStack,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap();
    let headers = [
        ("partner-token", VALID_PARTNER_TOKEN),
        ("idempotency-key", key),
    ];
    both_ways(s, Method::POST, path, token, &headers, Some(&bytes)).await
}

/// [`same_both_ways`] as merchant A, with a fresh key tagged `tag`.
async fn as_a(s: &GatewayStack, path: &str, tag: &str, body: &Value) -> Answer {
    same_both_ways(s, path, &s.a.api_token, &fresh_key(tag), body).await
}

async fn get_both_ways(s: &GatewayStack, path: &str, token: &str) -> Answer {
    both_ways(s, Method::GET, path, token, &[], None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payment_kind_answers_through_the_gateway_byte_for_byte_as_the_simulator_does() {
    let s = GatewayStack::start(GatewayOptions::default()).await;
    let a = s.a.api_token.clone();

    let bought = as_a(&s, "/payment/purchase", "t-pur", &purchase("30.00", "T-1")).await;
    assert_eq!(bought.status, 200);
    assert_eq!(bought.header("is-valid-partner-token"), Some("1"));
    let purchase_id = transaction_id(&bought);
    let preauth = as_a(&s, "/payment/preauth", "t-pre", &purchase("20.00", "T-2")).await;
    assert_eq!(preauth.status, 200);
    let capture = json!({"preAuthTransactionId": transaction_id(&preauth), "amount": "15.00", "ipAddress": "192.168.1.1"});
    let captured = as_a(&s, "/payment/capture", "t-cap", &capture).await;
    assert_eq!(captured.status, 200);
    let mut verify = purchase("0", "T-3");
    verify.as_object_mut().unwrap().remove("amount");
    let verified = as_a(&s, "/payment/verify", "t-ver", &verify).await;
    assert_eq!(verified.status, 200);
    let refund =
        json!({"originalTransactionId": purchase_id, "amount": "1.00", "ipAddress": "192.168.1.1"});
    let refunded = as_a(&s, "/payment/refund", "t-ref", &refund).await;
    assert_eq!(refunded.status, 200);
    let to_reverse = as_a(&s, "/payment/purchase", "t-pu2", &purchase("7.00", "T-4")).await;
    let reverse =
        json!({"cardTransactionId": transaction_id(&to_reverse), "ipAddress": "192.168.1.1"});
    let reversed = as_a(&s, "/payment/reverse", "t-rev", &reverse).await;
    assert_eq!(reversed.status, 200);
    let withdraw = purchase("3.00", "T-5");
    let withdrawn = as_a(&s, "/payment/withdraw", "t-wdr", &withdraw).await;
    assert_eq!(withdrawn.status, 200);
    let checkout = json!({"paymentType": "purchase", "amount": "9.99", "currency": "CAD", "invoiceNumber": "T-6"});
    let initialized = as_a(&s, "/helcim-pay/initialize", "t-hpi", &checkout).await;
    assert_eq!(initialized.status, 200);
    assert!(initialized.json()["checkoutToken"].is_string());

    let code = listening_device(&get_both_ways(&s, "/devices", &a).await.json());
    let on_terminal = json!({"currency": "CAD", "transactionAmount": "4.00", "invoiceNumber": "T-7", "customerCode": "CST-GW"});
    let (buy_at, refund_at) = (
        format!("/devices/{code}/payment/purchase"),
        format!("/devices/{code}/payment/refund"),
    );
    assert_eq!(as_a(&s, &buy_at, "t-dvp", &on_terminal).await.status, 202);
    let busy = as_a(&s, &refund_at, "t-dvb", &on_terminal).await;
    assert_eq!(busy.status, 409, "Device Not Listening");
    let completed = s
        .http
        .post(format!("{}/sim/devices/{code}/complete", s.sim_url))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);
    let terminal_refund = as_a(&s, &refund_at, "t-dvr", &on_terminal).await;
    assert_eq!(terminal_refund.status, 202);

    let plan = json!({"paymentPlans": [{"name": "Gold", "recurringAmount": 10}]});
    let plans = as_a(&s, "/payment-plans", "t-pln", &plan).await;
    assert_eq!(plans.status, 200);
    let plan_id = plans.json()["data"][0]["id"].clone();
    let subscription =
        json!({"subscriptions": [{"paymentPlanId": plan_id, "customerCode": "CST-GW"}]});
    let subscribed = as_a(&s, "/subscriptions", "t-sub", &subscription).await;
    assert_eq!(subscribed.status, 200);
    let add_on = json!({"addOns": [{"name": "Extra", "amount": 5}]});
    assert_eq!(as_a(&s, "/add-ons", "t-add", &add_on).await.status, 200);

    // Errors: validation, an unknown token, a reused key with another body, a decline.
    let invalid = as_a(&s, "/payment/purchase", "t-bad", &json!({"amount": "5.00"})).await;
    assert_eq!(invalid.status, 400);
    let unknown = same_both_ways(
        &s,
        "/payment/purchase",
        "not-a-token",
        &fresh_key("t-401"),
        &purchase("5.00", "T-8"),
    )
    .await;
    assert_eq!(unknown.status, 401);
    let key = fresh_key("t-409");
    // The first use of a key, then the same key with another body.
    same_both_ways(&s, "/payment/purchase", &a, &key, &purchase("6.00", "T-9")).await;
    let conflict =
        same_both_ways(&s, "/payment/purchase", &a, &key, &purchase("6.01", "T-9")).await;
    assert_eq!(conflict.status, 409);
    let declined = as_a(&s, "/payment/purchase", "t-dec", &purchase("12.05", "T-10")).await;
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
    let first = s.buy(a, Some(&k_a), "11.00", "E-1").await;
    assert_eq!(
        (first.status, first.header("is-valid-partner-token")),
        (200, Some("1"))
    );
    for _ in 0..2 {
        assert_eq!(s.buy(a, Some(&k_a), "11.00", "E-1").await, first);
    }
    // The same key with another body: Helcim's 409, another request.
    let k_conflict = fresh_key("e-c");
    s.buy(a, Some(&k_conflict), "2.00", "E-2").await;
    let conflict = s.buy(a, Some(&k_conflict), "2.01", "E-2").await;
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
    let by_c = s.buy(c, Some(&k_c), "14.00", "E-5").await;
    assert_eq!(
        (by_c.status, by_c.header("is-valid-partner-token")),
        (200, Some("1"))
    );
    // U is no registered account: forwarded, evidence kept under its fingerprint.
    let k_u = fresh_key("e-u");
    let by_u = s.buy(u, Some(&k_u), "15.00", "E-6").await;
    assert_eq!(by_u.status, 200);
    // Without an idempotency key every request is its own (Helcim refuses them: 400).
    for _ in 0..2 {
        let refused = s.buy(a, None, "16.00", "E-7").await;
        assert_eq!(refused.status, 400);
    }
    // A decline (500), HelcimPay.js and a terminal.
    let k_decline = fresh_key("e-d");
    assert_eq!(s.buy(a, Some(&k_decline), "17.05", "E-8").await.status, 500);
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
    let code = listening_device(&s.get("/v2/devices", a).await.json());
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
    s.get("/v2/card-transactions?invoiceNumber=E-1", a).await;

    s.expect_evidence(12, Duration::from_secs(20)).await;
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
    let outside = s.get("/v1/payment/purchase", &s.a.api_token).await;
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
    let truth = format!("{}/sim/truth?account={}", s.sim_url, s.a.account_id);
    let stats = json(s.http.get(truth)).await;
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
        .buy(&s.a.api_token, Some(&fresh_key("s-1")), "21.00", "S-1")
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
    s.buy(&s.a.api_token, Some(&fresh_key("s-4")), "24.05", "S-4")
        .await;
    // A card token in a query string.
    let by_card_token = format!("/v2/card-transactions?cardToken={card_token}");
    s.get(&by_card_token, &s.a.api_token).await;
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
