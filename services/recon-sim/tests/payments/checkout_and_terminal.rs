use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Harness, TEST_PARTNER_TOKEN, config};

#[tokio::test]
async fn a_completed_checkout_pays_the_initialized_invoice_and_amount_and_no_partner_request_sees_its_id()
 {
    let h = Harness::start(config()).await;
    let init = json!({"paymentType": "purchase", "amount": 42.5, "currency": "CAD", "invoiceNumber": "HP-1", "customerCode": "CST-HP"});
    let response = h
        .post(
            "/helcim-pay/initialize",
            None,
            Some(TEST_PARTNER_TOKEN),
            &init,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["is-valid-partner-token"], "1");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens.as_object().unwrap().len(), 2);
    let checkout = tokens["checkoutToken"].as_str().unwrap();
    assert!(tokens["secretToken"].is_string());
    assert_eq!(
        h.sim_json("/sim/stats").await["runTimeTransactions"],
        0,
        "initialize pays nothing"
    );

    let (status, tx) = h.complete(&format!("helcim-pay/{checkout}"), None).await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["invoiceNumber"], "HP-1");
    assert_eq!(tx["amountMinor"], 4250);
    assert_eq!(tx["status"], "APPROVED");
    assert_eq!(tx["madeBy"]["endpoint"], "helcim-pay/initialize");
    assert_eq!(tx["madeBy"]["isValidPartnerToken"], 1);
    let id = tx["transactionId"].as_u64().unwrap();
    h.card_transaction_webhook(id).await;
    assert_eq!(
        h.get("/card-transactions?invoiceNumber=HP-1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let truth = h.sim_json("/sim/truth").await;
    assert_eq!(truth["checkouts"][0]["transactionId"], id);
    assert!(truth["checkouts"][0].get("secretToken").is_none());

    let (status, again) = h.complete(&format!("helcim-pay/{checkout}"), None).await;
    assert_eq!(status, 409, "{again}");
    let (status, _) = h.control("/sim/helcim-pay/nope/complete", None).await;
    assert_eq!(status, 404);
    h.stop().await;
}

#[tokio::test]
async fn a_checkout_without_an_invoice_gets_one_and_can_be_declined() {
    let h = Harness::start(config()).await;
    let init = json!({"paymentType": "preauth", "amount": "10.00", "currency": "USD"});
    let tokens: Value = h
        .post("/helcim-pay/initialize", None, None, &init)
        .await
        .json()
        .await
        .unwrap();
    let checkout = tokens["checkoutToken"].as_str().unwrap();
    let (status, tx) = h
        .complete(&format!("helcim-pay/{checkout}"), Some("decline"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (tx["status"].as_str(), tx["type"].as_str()),
        (Some("DECLINED"), Some("preauth"))
    );
    assert!(
        tx["invoiceNumber"].as_str().unwrap().starts_with("INV"),
        "{tx}"
    );
    assert!(tx["madeBy"]["isValidPartnerToken"].is_null());

    let bad = h
        .post(
            "/helcim-pay/initialize",
            None,
            None,
            &json!({"paymentType": "sale", "currency": "CAD"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["errors"]["paymentType"].is_string() && body["errors"]["amount"].is_string(),
        "{body}"
    );
    h.stop().await;
}

fn device(h: &Harness, listening: bool) -> String {
    h.sim
        .state()
        .ledger()
        .devices
        .iter()
        .find(|d| d.account_id == h.account.account_id && d.listening == listening)
        .unwrap()
        .code
        .clone()
}

#[tokio::test]
async fn a_terminal_purchase_answers_202_and_later_a_webhook_brings_its_transaction() {
    let mut config = config();
    config.payments.terminal_delay = Some(Duration::from_millis(200));
    let h = Harness::start(config).await;
    let devices = h.get("/devices").await;
    assert_eq!(devices.as_array().unwrap().len(), 2);
    let code = device(&h, true);
    let body = json!({"currency": "CAD", "transactionAmount": 18.25, "invoiceNumber": "POS-1", "customerCode": "CST-POS"});
    let response = h
        .post(
            &format!("/devices/{code}/payment/purchase"),
            None,
            Some("wrong"),
            &body,
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["is-valid-partner-token"], "0");
    assert!(response.bytes().await.unwrap().is_empty());
    // Busy until the customer is done.
    let busy = h
        .post(
            &format!("/devices/{code}/payment/purchase"),
            None,
            None,
            &body,
        )
        .await;
    assert_eq!(busy.status(), 409);

    let generated = h
        .sim
        .state()
        .activity
        .transactions
        .last()
        .unwrap()
        .transaction_id;
    let run_time = |r: &crate::harness::Received| {
        r.json()["type"] == "cardTransaction"
            && r.json()["id"].as_str().unwrap().parse::<u64>().unwrap() > generated
    };
    let hook = h.webhook(run_time).await;
    let id: u64 = hook.json()["id"].as_str().unwrap().parse().unwrap();
    let tx = h.truth_of(id).await;
    assert_eq!(
        (tx["invoiceNumber"].as_str(), tx["amountMinor"].as_i64()),
        (Some("POS-1"), Some(1825))
    );
    assert_eq!(tx["user"], "Smart Terminal");
    assert_eq!(tx["madeBy"]["endpoint"], "devices/payment/purchase");
    assert_eq!(tx["madeBy"]["isValidPartnerToken"], 0);
    assert!(hook.signed_by(&h.account.verifier_tokens));
    h.stop().await;
}

#[tokio::test]
async fn a_terminal_request_can_be_cancelled_declined_or_refused_as_not_listening() {
    let mut config = config();
    config.payments.terminal_delay = None;
    let h = Harness::start(config).await;
    let code = device(&h, true);
    let body = json!({"currency": "CAD", "transactionAmount": "5.00", "invoiceNumber": "POS-2", "customerCode": "CST-POS"});
    let path = format!("/devices/{code}/payment/purchase");
    assert_eq!(h.post(&path, None, None, &body).await.status(), 202);
    let (status, cancel) = h.complete(&format!("devices/{code}"), Some("cancel")).await;
    assert_eq!(status, 200, "{cancel}");
    let hook = h
        .webhook(|r| r.body.contains("terminalCancel") && r.body.contains("POS-2"))
        .await;
    let data = &hook.json()["data"];
    assert_eq!(
        (data["invoiceNumber"].as_str(), data["deviceCode"].as_str()),
        (Some("POS-2"), Some(code.as_str()))
    );
    assert_eq!(data["transactionAmount"], 5);
    assert!(hook.json().get("id").is_none());

    // Free again; a refund this time, declined by the customer's bank.
    let refund = format!("/devices/{code}/payment/refund");
    assert_eq!(h.post(&refund, None, None, &body).await.status(), 202);
    let (status, done) = h
        .complete(&format!("devices/{code}"), Some("decline"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            done["transaction"]["type"].as_str(),
            done["transaction"]["status"].as_str()
        ),
        (Some("refund"), Some("DECLINED"))
    );
    let (status, _) = h.complete(&format!("devices/{code}"), None).await;
    assert_eq!(status, 404, "nothing waits on the device any more");

    for code in [device(&h, false), "ZZZZ".to_string()] {
        let response = h
            .post(
                &format!("/devices/{code}/payment/purchase"),
                None,
                None,
                &body,
            )
            .await;
        assert_eq!(response.status(), 409);
        let said: Value = response.json().await.unwrap();
        assert_eq!(said, json!({"errors": "Device Not Listening"}));
    }
    let truth = h.sim_json("/sim/truth").await;
    assert!(
        truth["terminalCancels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["invoiceNumber"] == "POS-2")
    );
    h.stop().await;
}
