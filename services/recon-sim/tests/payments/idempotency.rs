use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Harness, config, key, purchase};

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer_byte_for_byte_and_makes_nothing_new() {
    let h = Harness::start(config()).await;
    for (n, body) in [
        (1, purchase("10.00")),
        (2, {
            let mut declined = purchase("11.00");
            declined["cardData"]["cardCVV"] = json!("201");
            declined
        }),
    ] {
        let first = h.pay("purchase", &key(n), &body).await;
        let (status, partner) = (
            first.status(),
            first.headers().get("is-valid-partner-token").cloned(),
        );
        let first = first.bytes().await.unwrap();
        let made = h.sim.state().ledger().activity.transactions.len();
        // A retry with the keys of the body in another order is the same request.
        let reordered: Value = serde_json::from_str(&body.to_string()).unwrap();
        let again = h.pay("purchase", &key(n), &reordered).await;
        assert_eq!(again.status(), status);
        assert_eq!(
            again.headers().get("is-valid-partner-token").cloned(),
            partner
        );
        assert_eq!(again.bytes().await.unwrap(), first);
        assert_eq!(
            h.sim.state().ledger().activity.transactions.len(),
            made,
            "no new transaction"
        );
    }
    // Two payments made (one approved, one declined), two webhooks, no more.
    let made: Vec<u64> = h.sim.state().ledger().made_by.keys().copied().collect();
    assert_eq!(made.len(), 2);
    for id in &made {
        h.card_transaction_webhook(*id).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks = h
        .received()
        .into_iter()
        .filter(|r| made.iter().any(|id| r.body.contains(&format!("\"{id}\""))))
        .count();
    assert_eq!(hooks, 2);
    h.stop().await;
}

#[tokio::test]
async fn the_same_key_with_another_body_or_endpoint_is_a_409_with_a_reason() {
    let h = Harness::start(config()).await;
    assert_eq!(
        h.pay("purchase", &key(1), &purchase("10.00"))
            .await
            .status(),
        200
    );
    let conflict = h.pay("purchase", &key(1), &purchase("10.01")).await;
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.unwrap();
    assert!(
        body["errors"].as_str().unwrap().contains("idempotency-key"),
        "{body}"
    );
    assert_eq!(
        h.pay("preauth", &key(1), &purchase("10.00")).await.status(),
        409
    );
    assert_eq!(h.sim_json("/sim/stats").await["runTimeTransactions"], 1);
    h.stop().await;
}

#[tokio::test]
async fn a_missing_or_malformed_key_is_a_400_that_says_why() {
    let h = Harness::start(config()).await;
    let cases = [
        (None, "required"),
        (Some("a".repeat(24)), "25 to 36"),
        (Some("a".repeat(37)), "25 to 36"),
        (
            Some("abcdefghijklmnopqrstuvwxy.z".to_string()),
            "letters, digits",
        ),
    ];
    for (key, reason) in cases {
        let response = h.buy_as(&h.account.api_token, key.as_deref(), "1.00").await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        let said = body["errors"]["idempotency-key"].as_str().unwrap();
        assert!(said.contains(reason), "{said}");
    }
    assert_eq!(
        h.pay("purchase", &"a".repeat(25), &purchase("1.00"))
            .await
            .status(),
        200
    );
    assert_eq!(
        h.pay(
            "purchase",
            &format!("{}_-", "A".repeat(33)),
            &purchase("1.00")
        )
        .await
        .status(),
        200
    );
    h.stop().await;
}

#[tokio::test]
async fn keys_are_per_account_and_forgotten_after_the_configured_time() {
    let mut config = config();
    config.payments.idempotency_ttl = Duration::from_millis(1_500);
    let h = Harness::start(config).await;
    let other = h.sim.state().activity.accounts[1].clone();
    assert_eq!(
        h.pay("purchase", &key(1), &purchase("10.00"))
            .await
            .status(),
        200
    );
    let mut theirs = purchase("10.01");
    theirs["currency"] = serde_json::json!(other.terminals[0].currency);
    let response = h
        .post_as(
            &other.api_token,
            "/payment/purchase",
            Some(&key(1)),
            None,
            theirs.to_string(),
        )
        .await;
    assert_eq!(response.status(), 200, "another account's key space");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        h.pay("purchase", &key(1), &purchase("10.01"))
            .await
            .status(),
        200
    );
    assert_eq!(h.sim_json("/sim/stats").await["runTimeTransactions"], 3);
    h.stop().await;
}
