use serde_json::{Value, json};

use crate::harness::{Harness, config, id_of, key, purchase};

#[tokio::test]
async fn a_purchase_is_a_real_transaction_of_the_account_in_its_open_batch() {
    let h = Harness::start(config()).await;
    let response = h.pay("purchase", &key(1), &purchase("25.10")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answered = response.text().await.unwrap();
    let rendered: Value = serde_json::from_str(&answered).unwrap();
    let id = id_of(&rendered);

    // The answer is the transaction exactly as GET renders it.
    assert_eq!(
        h.get_text(&format!("/card-transactions/{id}")).await,
        answered
    );
    let listed = h.get("/card-transactions?invoiceNumber=TEST-25.10").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(id_of(&listed[0]), id);
    assert_eq!(
        h.get("/card-transactions?customerCode=CST-TEST")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let truth = h.truth_of(id).await;
    assert_eq!(truth["amountMinor"], 2510);
    assert_eq!(truth["status"], "APPROVED");
    assert_eq!(truth["type"], "purchase");
    assert_eq!(truth["cardNumber"], "4124939990");
    assert_eq!(
        truth["madeBy"],
        json!({"endpoint": "payment/purchase", "isValidPartnerToken": null, "partnerTokenSent": false, "idempotencyKey": key(1)})
    );

    // The batch's totals count it.
    let batch_id = truth["cardBatchId"].as_u64().unwrap();
    let before = h
        .sim
        .state()
        .activity
        .batch(batch_id)
        .expect("the generated open batch")
        .stats
        .clone();
    assert!(
        h.sim
            .state()
            .activity
            .batch(batch_id)
            .unwrap()
            .closed_at
            .is_none()
    );
    let batch = h
        .get(&format!("/card-batches/{batch_id}?collect-stats=true"))
        .await;
    assert_eq!(batch["countTotal"], before.count_total + 1);
    assert_eq!(
        batch["countApproved"],
        (before.count_approved + 1).to_string()
    );
    let sales = recon_money::parse_minor_units(&text(&batch["totalSales"]), 2).unwrap();
    assert_eq!(sales, before.total_sales + 2510);

    // And a signed webhook announces it.
    let hook = h.card_transaction_webhook(id).await;
    assert_eq!(hook.account, h.account.account_id);
    assert!(hook.signed_by(&h.account.verifier_tokens));
    h.stop().await;
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn a_request_with_missing_or_bad_fields_is_400_naming_each_and_makes_nothing() {
    let h = Harness::start(config()).await;
    let before = h.sim.state().ledger().activity.transactions.len();
    let response = h
        .pay(
            "purchase",
            &key(1),
            &json!({"currency": "EUR", "amount": "1.001"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    for field in ["ipAddress", "currency", "amount", "cardData"] {
        assert!(body["errors"][field].is_string(), "{field} in {body}");
    }
    let bad_card = json!({
        "ipAddress": "1.2.3.4", "currency": "CAD", "amount": 5,
        "cardData": {"cardNumber": "4124939999999991", "cardExpiry": "0130", "cardCVV": "100"}
    });
    let body: Value = h
        .pay("purchase", &key(2), &bad_card)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["errors"]["cardData.cardNumber"], "Invalid card number");
    let unknown_token = json!({"ipAddress": "1.2.3.4", "currency": "CAD", "amount": 5, "cardData": {"cardToken": "NOPE"}});
    let response = h.pay("purchase", &key(3), &unknown_token).await;
    assert_eq!(response.status(), 400);
    let response = h
        .post_as(
            &h.account.api_token,
            "/payment/purchase",
            Some(&key(4)),
            None,
            "{not json".into(),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not valid JSON"));
    assert_eq!(h.sim.state().ledger().activity.transactions.len(), before);
    h.stop().await;
}

#[tokio::test]
async fn a_decline_answers_500_with_an_error_and_is_a_declined_transaction_with_a_webhook() {
    let h = Harness::start(config()).await;
    let mut body = purchase("30.00");
    body["cardData"]["cardCVV"] = json!("200");
    let response = h.pay("purchase", &key(1), &body).await;
    assert_eq!(response.status(), 500);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["errors"]
            .as_str()
            .unwrap()
            .starts_with("Transaction Declined: DECLINE CVV2"),
        "{answer}"
    );

    // The amount rule: cents of .05 decline, with a card token too.
    let token = h
        .sim
        .state()
        .activity
        .transactions
        .iter()
        .find(|t| t.account_id == h.account.account_id && t.currency == "CAD")
        .unwrap()
        .card_token
        .clone();
    let by_token = json!({"ipAddress": "1.2.3.4", "currency": "CAD", "amount": "12.05", "cardData": {"cardToken": token}});
    let response = h.pay("purchase", &key(2), &by_token).await;
    assert_eq!(response.status(), 500);

    let truth = h.sim_json("/sim/truth").await;
    let declined: Vec<&Value> = truth["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["madeBy"].is_null())
        .collect();
    assert_eq!(declined.len(), 2);
    assert!(
        declined
            .iter()
            .all(|t| t["status"] == "DECLINED" && t["approvalCode"] == "")
    );
    let id = declined[0]["transactionId"].as_u64().unwrap();
    h.card_transaction_webhook(id).await;
    let rendered = h.get(&format!("/card-transactions/{id}")).await;
    assert_eq!(rendered["status"], "DECLINED");
    h.stop().await;
}

#[tokio::test]
async fn preauth_capture_refund_reverse_verify_and_withdraw_follow_the_rules() {
    let h = Harness::start(config()).await;
    let mut n = 0;
    let mut pay = async |kind: &str, body: Value| {
        n += 1;
        let response = h.pay(kind, &key(n), &body).await;
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, pre) = pay("preauth", purchase("100.00")).await;
    assert_eq!(status, 200);
    let pre_id = id_of(&pre);
    let (status, captured) = pay(
        "capture",
        json!({"preAuthTransactionId": pre_id, "amount": "90.00"}),
    )
    .await;
    assert_eq!(status, 200, "{captured}");
    let (status, again) = pay(
        "capture",
        json!({"preAuthTransactionId": pre_id.to_string()}),
    )
    .await;
    assert_eq!(status, 400, "{again}");
    let capture_id = id_of(&captured);

    let (status, refunded) = pay(
        "refund",
        json!({"originalTransactionId": capture_id, "amount": 40}),
    )
    .await;
    assert_eq!(status, 200, "{refunded}");
    let (status, too_much) = pay(
        "refund",
        json!({"originalTransactionId": capture_id, "amount": "50.01"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        too_much["errors"]["amount"]
            .as_str()
            .unwrap()
            .contains("50"),
        "{too_much}"
    );
    let (status, missing) = pay("refund", json!({"amount": 1})).await;
    assert_eq!(status, 400);
    assert!(missing["errors"]["originalTransactionId"].is_string());

    let (_, sale) = pay("purchase", purchase("15.00")).await;
    let sale_id = id_of(&sale);
    let (status, reversed) = pay("reverse", json!({"cardTransactionId": sale_id})).await;
    assert_eq!(status, 200, "{reversed}");
    let (status, _) = pay(
        "refund",
        json!({"originalTransactionId": sale_id, "amount": 1}),
    )
    .await;
    assert_eq!(status, 400, "nothing is left to refund after a reverse");
    let (status, _) = pay("reverse", json!({"cardTransactionId": sale_id})).await;
    assert_eq!(status, 400, "a reverse happens once");

    let (status, verified) = pay(
        "verify",
        json!({"ipAddress": "1.2.3.4", "currency": "USD", "cardData": purchase("1")["cardData"]}),
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    let (status, withdrawn) = pay(
        "withdraw",
        json!({"currency": "CAD", "amount": "7.50", "cardData": purchase("1")["cardData"]}),
    )
    .await;
    assert_eq!(status, 200, "{withdrawn}");

    let truth = |id: u64| h.truth_of(id);
    let capture = truth(capture_id).await;
    assert_eq!(
        (capture["type"].as_str(), capture["amountMinor"].as_i64()),
        (Some("capture"), Some(9000))
    );
    assert_eq!(capture["originalTransactionId"], pre_id);
    let reverse = truth(id_of(&reversed)).await;
    assert_eq!(
        (reverse["type"].as_str(), reverse["amountMinor"].as_i64()),
        (Some("reverse"), Some(1500))
    );
    let verify = truth(id_of(&verified)).await;
    assert_eq!(
        (verify["currency"].as_str(), verify["amountMinor"].as_i64()),
        (Some("USD"), Some(0))
    );
    let withdraw = truth(id_of(&withdrawn)).await;
    assert_eq!(withdraw["type"], "refund");
    assert!(withdraw["originalTransactionId"].is_null());
    assert_eq!(withdraw["madeBy"]["endpoint"], "payment/withdraw");

    // Batch totals: sales 90 + 15, refunds 40 + 7.50, reversed 15.
    let batch_id = capture["cardBatchId"].as_u64().unwrap();
    let generated = h
        .sim
        .state()
        .activity
        .batch(batch_id)
        .unwrap()
        .stats
        .clone();
    let now = h
        .sim
        .state()
        .ledger()
        .activity
        .batch(batch_id)
        .unwrap()
        .stats
        .clone();
    assert_eq!(now.total_sales - generated.total_sales, 10500);
    assert_eq!(now.total_refunds - generated.total_refunds, 4750);
    assert_eq!(now.total_reversed - generated.total_reversed, 1500);
    h.stop().await;
}

#[tokio::test]
async fn payment_calls_pass_the_same_gate_of_tokens_limits_and_faults() {
    let h = Harness::start(config()).await;
    let no_access = h.account.no_access_token.clone();
    let response = h.buy_as(&no_access, Some(&key(1)), "1.00").await;
    assert_eq!(response.status(), 403);
    let response = h.buy_as("wrong", Some(&key(1)), "1.00").await;
    assert_eq!(response.status(), 401);

    h.sim.state().update_faults(|f| f.api.fail_next = 1);
    let response = h.pay("purchase", &key(2), &purchase("2.00")).await;
    assert_eq!(response.status(), 503);
    // The failed attempt made nothing and left the key unused: the retry pays once.
    let response = h.pay("purchase", &key(2), &purchase("2.00")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.sim_json("/sim/stats").await["runTimeTransactions"], 1);

    h.sim
        .state()
        .limiter
        .set_limits(recon_sim::limits::RateLimits::HELCIM);
    let response = h.pay("purchase", &key(3), &purchase("3.00")).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(
        headers.contains_key("minute-limit-remaining")
            && headers.contains_key("hour-limit-remaining")
    );
    let (status, _) = h
        .control(
            &format!("/sim/accounts/{}/exhaust?seconds=5", h.account.account_id),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let response = h.pay("purchase", &key(4), &purchase("4.00")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["minute-limit-remaining"], "0");
    h.stop().await;
}
