use serde_json::{Value, json};

use crate::harness::{Harness, TEST_PARTNER_TOKEN, config};

#[tokio::test]
async fn recurring_create_calls_answer_data_with_ids_and_refuse_in_the_recurring_shape() {
    let h = Harness::start(config()).await;
    let plan = json!({"paymentPlans": [{"name": "Gold", "recurringAmount": 20, "billingPeriod": "monthly", "currency": "CAD"}]});
    let response = h
        .post("/payment-plans", None, Some(TEST_PARTNER_TOKEN), &plan)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["is-valid-partner-token"], "1");
    let created: Value = response.json().await.unwrap();
    let plan_id = created["data"][0]["id"].as_u64().unwrap();
    assert_eq!(created["data"][0]["name"], "Gold");

    let subscription =
        json!({"subscriptions": [{"paymentPlanId": plan_id, "customerCode": "CST-1"}]});
    let response = h
        .post("/subscriptions", None, Some("other"), &subscription)
        .await;
    assert_eq!(response.headers()["is-valid-partner-token"], "0");
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["data"][0]["status"], "active");
    let add_on = json!({"addOns": [{"name": "Extra", "amount": "5.00"}]});
    assert_eq!(h.post("/add-ons", None, None, &add_on).await.status(), 200);

    let response = h
        .post(
            "/subscriptions",
            None,
            None,
            &json!({"subscriptions": [{"paymentPlanId": 1}]}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["status"], "error");
    let errors = refused["errors"].as_array().unwrap();
    assert!(errors.iter().all(|e| e["code"].is_string()
        && e["message"].is_string()
        && e["source"].is_string()
        && e.get("data").is_some()));
    let sources: Vec<&str> = errors
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"subscriptions[0].customerCode")
            && sources.contains(&"subscriptions[0].paymentPlanId"),
        "{sources:?}"
    );

    let truth = h.sim_json("/sim/truth").await;
    let recurring = truth["recurring"].as_array().unwrap();
    assert_eq!(recurring.len(), 3);
    assert_eq!(recurring[0]["isValidPartnerToken"], 1);
    assert_eq!(recurring[1]["isValidPartnerToken"], 0);
    assert!(recurring[2]["isValidPartnerToken"].is_null());
    assert_eq!(h.sim_json("/sim/stats").await["runTimeTransactions"], 0);
    h.stop().await;
}
