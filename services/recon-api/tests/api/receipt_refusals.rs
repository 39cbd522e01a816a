//! `POST /v1/attribution/receipts`: every refusal says why, and stores nothing.

use recon_store::api_keys::Role;
use serde_json::{Value, json};

use crate::harness::*;
use crate::receipt_support::*;

#[tokio::test]
async fn one_bad_item_refuses_the_whole_batch_naming_its_index_and_nothing_is_stored() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let mut batch = receipts(5);
    batch[3]["amount"] = json!("10.001");

    let (status, body) = post_batch(&api, &partner, &batch).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_receipts");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{body}"
    );
    assert_eq!(indexes(&body), vec![3]);
    assert_eq!(body["items"][0]["receiptId"], "r-3");
    assert!(
        body["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("3 decimals"),
        "{body}"
    );
    assert_eq!(
        evidence_rows(&api).await,
        0,
        "the four good ones are not stored"
    );
    api.stop().await;
}

#[tokio::test]
async fn every_bad_item_is_listed_with_its_own_reason_in_one_answer() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    // r-9 is on file already; a batch that changes it and has other faults lists all.
    let (status, _) = post_batch(&api, &partner, &[receipt("r-9", ACCOUNT)]).await;
    assert_eq!(status, 200);

    let mut batch = receipts(8);
    batch[1]["transactionId"] = json!(null);
    batch[1]["invoiceNumber"] = json!(null);
    batch[2]["partnerTokenSent"] = json!(false);
    batch[4]["observedAt"] = json!("2999-01-01T00:00:00Z");
    batch[5]["isValidPartnerTokn"] = json!(1);
    batch[6] = receipt("r-0", ACCOUNT);
    batch[7] = receipt("r-9", ACCOUNT);
    batch[7]["amount"] = json!("1.00");
    let (status, body) = post_batch(&api, &partner, &batch).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(indexes(&body), vec![1, 2, 4, 5, 6, 7]);
    let reasons: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["reason"].as_str().unwrap())
        .collect();
    for (reason, says) in reasons.iter().zip([
        "neither transactionId nor invoiceNumber",
        "cannot accept a token that was not sent",
        "in the future",
        "unknown field `isValidPartnerTokn`",
        "already appears at index 0",
        "already recorded for account acct-a with a different amount",
    ]) {
        assert!(reason.contains(says), "{says}: {reason}");
    }
    assert!(
        body["message"].as_str().unwrap().starts_with("6 of 8"),
        "{body}"
    );
    assert_eq!(evidence_rows(&api).await, 1, "only the earlier r-9");
    api.stop().await;
}

#[tokio::test]
async fn a_receipt_id_reused_with_different_content_is_refused_naming_it() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let (status, _) = post_batch(&api, &partner, &receipts(2)).await;
    assert_eq!(status, 200);

    let mut changed = receipts(4);
    changed[1]["isValidPartnerToken"] = json!(0);
    changed[1]["observedAt"] = json!("2026-11-01T10:00:01-06:00");
    let (status, body) = post_batch(&api, &partner, &changed).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(indexes(&body), vec![1]);
    assert_eq!(body["items"][0]["receiptId"], "r-1");
    let reason = body["items"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("isValidPartnerToken, observedAt"),
        "names what differs: {reason}"
    );
    assert_eq!(
        evidence_rows(&api).await,
        2,
        "r-2 and r-3 were not stored either"
    );
    let answer: Option<i16> = sqlx::query_scalar(
        "SELECT is_valid_partner_token FROM attribution_evidence WHERE receipt_id = 'r-1'",
    )
    .fetch_one(&api.db.pool)
    .await
    .unwrap();
    assert_eq!(answer, Some(1), "what was reported first stands");
    api.stop().await;
}

#[tokio::test]
async fn a_partner_key_naming_another_account_gets_the_404_of_an_unknown_account() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let admin = api.key(Role::Admin, None).await;

    let batch = vec![receipt("r-1", ACCOUNT), receipt("r-2", OTHER_ACCOUNT)];
    let (status, outside) = post_batch(&api, &partner, &batch).await;
    assert_eq!(status, 404, "{outside}");
    // A key covering every account, naming one that does not exist: the same answer.
    let (status, missing) = post_batch(&api, &admin, &[receipt("r-2", "acct-nowhere")]).await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(outside["error"], missing["error"]);
    assert_eq!(
        outside.as_object().unwrap().keys().collect::<Vec<_>>(),
        missing.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert_eq!(outside["accountId"], OTHER_ACCOUNT);
    // An account the key covers but nobody registered answers the same.
    let ghost = api.key(Role::Partner, Some(&["acct-ghost"])).await;
    let (status, body) = post_batch(&api, &ghost, &[receipt("r-3", "acct-ghost")]).await;
    assert_eq!((status.as_u16(), &body["error"]), (404, &missing["error"]));
    // Out of scope wins over bad items: the batch is not judged at all.
    let mut bad = receipt("r-4", OTHER_ACCOUNT);
    bad["amount"] = json!(1);
    let (status, _) = post_batch(&api, &partner, &[bad]).await;
    assert_eq!(status, 404);
    assert_eq!(evidence_rows(&api).await, 0);
    api.stop().await;
}

#[tokio::test]
async fn a_finance_key_may_not_report_receipts_and_is_told_which_key_may() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let finance = api.key(Role::Finance, None).await;
    let (status, body) = post_batch(&api, &finance, &receipts(1)).await;
    assert_eq!(status, 403, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(
        reason.contains("partner key") && reason.contains("admin"),
        "{reason}"
    );
    let unauthenticated = api
        .http
        .post(format!("{}/v1/attribution/receipts", api.url))
        .json(&json!({"receipts": receipts(1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(evidence_rows(&api).await, 0);
    api.stop().await;
}

#[tokio::test]
async fn more_than_1000_receipts_or_2_mib_are_refused_as_too_large_with_a_reason() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let (status, body) = post_batch(&api, &partner, &receipts(1_001)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "too_many_receipts");
    assert!(
        body["message"].as_str().unwrap().contains("at most 1000"),
        "{body}"
    );

    let mut padded = receipt("r-1", ACCOUNT);
    padded["invoiceNumber"] = json!("x".repeat(3 * 1024 * 1024));
    let (status, body) = post_batch(&api, &partner, &[padded]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "body_too_large");
    assert_eq!(evidence_rows(&api).await, 0);
    api.stop().await;
}

#[tokio::test]
async fn malformed_json_a_wrong_content_type_and_an_empty_batch_are_refused_with_reasons() {
    let api = Harness::start(Options::default()).await;
    register_accounts(&api).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;
    let send = |content_type: &'static str, body: &'static str| {
        api.http
            .post(format!("{}/v1/attribution/receipts", api.url))
            .bearer_auth(&partner)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        ("application/json", "{\"receipts\": [", 400, "invalid_json"),
        (
            "text/plain",
            "{\"receipts\": []}",
            415,
            "unsupported_media_type",
        ),
        ("application/json", "{\"receipts\": []}", 422, "empty_batch"),
        ("application/json", "[]", 422, "invalid_batch"),
        (
            "application/json; charset=utf-8",
            "{\"receipts\": [], \"x\": 1}",
            422,
            "invalid_batch",
        ),
    ];
    for (content_type, text, expected, code) in cases {
        let response = send(content_type, text).await.unwrap();
        assert_eq!(response.status(), expected, "{content_type} {text}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_eq!(evidence_rows(&api).await, 0);
    api.stop().await;
}
