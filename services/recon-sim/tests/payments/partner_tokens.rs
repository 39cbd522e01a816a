use serde_json::json;

use crate::harness::{Harness, TEST_PARTNER_TOKEN, config, id_of, key, partner_answer};
use recon_sim::settings::WhenAbsent;

#[tokio::test]
async fn a_valid_token_gets_1_another_0_and_none_no_header_and_the_truth_keeps_which() {
    let h = Harness::start(config()).await;
    let mut made = Vec::new();
    for (n, partner, expected) in [
        (1, Some(TEST_PARTNER_TOKEN), Some("1")),
        (2, Some("not-our-token"), Some("0")),
        (3, None, None),
    ] {
        let response = h.buy(Some(&key(n)), partner, &format!("{n}.00")).await;
        let expected = expected.map(String::from);
        assert_eq!(partner_answer(&response), (200, expected));
        made.push(id_of(&response.json().await.unwrap()));
    }
    let made_by: Vec<_> = made_by_of(&h, &made).await;
    assert_eq!(made_by[0]["isValidPartnerToken"], 1);
    assert_eq!(made_by[1]["isValidPartnerToken"], 0);
    assert!(made_by[2]["isValidPartnerToken"].is_null());
    assert_eq!(made_by[1]["partnerTokenSent"], true);
    assert_eq!(made_by[2]["partnerTokenSent"], false);
    let truth = h.sim_json("/sim/truth").await.to_string();
    assert!(
        !truth.contains("not-our-token") && !truth.contains(TEST_PARTNER_TOKEN),
        "the truth keeps no token"
    );
    assert_eq!(
        h.sim_json("/sim/stats").await["partnerTokens"],
        json!({"valid": 1, "invalid": 1, "absent": 1})
    );
    h.stop().await;
}

async fn made_by_of(h: &Harness, ids: &[u64]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(h.truth_of(*id).await["madeBy"].clone());
    }
    out
}

#[tokio::test]
async fn configured_so_a_request_without_a_token_gets_0() {
    let mut config = config();
    config.payments.partner_tokens.when_absent = WhenAbsent::Zero;
    config.payments.partner_tokens.valid = vec!["partner-a".into()];
    let h = Harness::start(config).await;
    let response = h.buy(Some(&key(1)), None, "1.00").await;
    assert_eq!(response.headers()["is-valid-partner-token"], "0");
    let response = h.buy(Some(&key(2)), Some("partner-a"), "2.00").await;
    assert_eq!(response.headers()["is-valid-partner-token"], "1");
    let response = h.buy(Some(&key(3)), Some(TEST_PARTNER_TOKEN), "3.00").await;
    assert_eq!(
        response.headers()["is-valid-partner-token"],
        "0",
        "only configured tokens are valid"
    );
    h.stop().await;
}

#[tokio::test]
async fn every_answer_of_a_partner_endpoint_says_but_an_edge_error_page_and_reads_never_do() {
    let h = Harness::start(config()).await;
    let partner = Some(TEST_PARTNER_TOKEN);
    let bad = h
        .post("/payment/purchase", Some(&key(1)), partner, &json!({}))
        .await;
    assert_eq!(partner_answer(&bad), (400, Some("1".into())));
    let missing_key = h.buy(None, partner, "1.00").await;
    assert_eq!(missing_key.headers()["is-valid-partner-token"], "1");
    let unauthorized = h
        .post_as(
            "wrong",
            "/payment/purchase",
            Some(&key(2)),
            partner,
            "{}".into(),
        )
        .await;
    assert_eq!(partner_answer(&unauthorized), (401, Some("1".into())));

    h.sim.state().update_faults(|f| {
        f.api.fail_next = 1;
        f.api.error_status = 503;
    });
    let failed = h.buy(Some(&key(3)), partner, "1.00").await;
    assert_eq!(partner_answer(&failed), (503, Some("1".into())));
    h.sim.state().update_faults(|f| {
        f.api.fail_next = 1;
        f.api.error_status = 502;
    });
    let edge = h.buy(Some(&key(3)), partner, "1.00").await;
    assert_eq!(edge.status(), 502);
    assert!(edge.headers().get("is-valid-partner-token").is_none());

    let read = h
        .http
        .get(h.v2("/connection-test"))
        .header("api-token", &h.account.api_token)
        .header("partner-token", TEST_PARTNER_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(read.headers().get("is-valid-partner-token").is_none());
    h.stop().await;
}
