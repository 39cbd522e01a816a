use serde_json::{Value, json};

use crate::harness::{Harness, config, id_of, key};

#[tokio::test]
async fn a_sale_in_helcims_own_tools_is_a_transaction_no_request_made_with_its_webhook() {
    let h = Harness::start(config()).await;
    let account = &h.account.account_id;
    let (status, tx) = h
        .control(
            &format!("/sim/accounts/{account}/sales"),
            Some(json!({"amount": "63.10", "currency": "CAD", "invoiceNumber": "VT-1", "customerCode": "CST-VT"})),
        )
        .await;
    assert_eq!(status, 200, "{tx}");
    assert!(tx["madeBy"].is_null());
    assert_eq!(
        (tx["status"].as_str(), tx["user"].as_str()),
        (Some("APPROVED"), Some("Helcim System"))
    );
    let id = tx["transactionId"].as_u64().unwrap();
    assert_eq!(h.truth_of(id).await["madeBy"], Value::Null);
    h.card_transaction_webhook(id).await;
    assert_eq!(id_of(&h.get(&format!("/card-transactions/{id}")).await), id);
    // The generated activity is made by no request either.
    let truth = h.sim_json("/sim/truth").await;
    assert!(truth["transactions"][0]["madeBy"].is_null());

    let (status, refused) = h
        .control(
            &format!("/sim/accounts/{account}/sales"),
            Some(json!({"amount": "1.001"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, _) = h
        .control("/sim/accounts/nobody/sales", Some(json!({"amount": 1})))
        .await;
    assert_eq!(status, 404);
    h.stop().await;
}

#[tokio::test]
async fn a_connected_account_registers_with_its_own_token_and_the_referrer_gets_a_signed_webhook() {
    let h = Harness::start(config()).await;
    let referrer = h.account.clone();
    let (status, created) = h
        .control(
            &format!("/sim/accounts/{}/connected-accounts", referrer.account_id),
            Some(json!({"currencies": ["CAD"]})),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let new_id = created["accountId"].as_str().unwrap().to_string();
    let token = created["apiToken"].as_str().unwrap().to_string();
    assert_eq!(created["referredBy"], referrer.account_id.as_str());
    let verifiers: Vec<String> = serde_json::from_value(created["verifierTokens"].clone()).unwrap();

    let hook = h.webhook(|r| r.body.contains("connectedAccount")).await;
    assert_eq!(hook.account, referrer.account_id);
    assert!(hook.signed_by(&referrer.verifier_tokens));
    let body = hook.json();
    assert_eq!(body["type"], "connectedAccount");
    assert_eq!(body["data"]["connectedAccountId"], new_id.as_str());
    assert_eq!(body["data"]["apiToken"], token.as_str());

    let listed = h.sim_json("/sim/accounts").await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["accountId"] == new_id.as_str())
    );
    let truth = h.sim_json(&format!("/sim/truth?account={new_id}")).await;
    assert_eq!(
        truth["connectedAccounts"][0]["referredBy"],
        referrer.account_id.as_str()
    );

    // Its token pays; the webhook goes to its own URL, signed with its own token.
    let response = h.buy_as(&token, Some(&key(1)), "9.99").await;
    assert_eq!(response.status(), 200);
    let id = id_of(&response.json().await.unwrap());
    let hook = h.card_transaction_webhook(id).await;
    assert_eq!(hook.account, new_id);
    assert!(hook.signed_by(&verifiers));
    assert!(!hook.signed_by(&referrer.verifier_tokens));

    let (status, _) = h
        .control("/sim/accounts/nobody/connected-accounts", None)
        .await;
    assert_eq!(status, 404);
    h.stop().await;
}
