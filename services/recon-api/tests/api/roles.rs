use recon_api::transactions::PARTNER_FIELDS;
use recon_store::api_keys::Role;
use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn a_partner_key_gets_no_card_or_customer_fields_while_a_finance_key_does() {
    let api = Harness::start(Options::default()).await;
    let finance = api.key(Role::Finance, None).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;

    let response = api.transaction(&finance).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["cardNumber"], CARD_NUMBER);
    assert_eq!(body["customerCode"], CUSTOMER_CODE);
    assert_eq!(body["approvalCode"], APPROVAL_CODE);
    assert_eq!(body["amount"], "123.45");

    let response = api.transaction(&partner).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for secret in [
        CARD_NUMBER,
        CARD_TOKEN,
        HOLDER,
        CUSTOMER_CODE,
        APPROVAL_CODE,
        INVOICE,
        HELCIM_USER,
    ] {
        assert!(!text.contains(secret), "a partner saw {secret}: {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let fields = body.as_object().unwrap();
    assert!(
        fields.keys().all(|k| PARTNER_FIELDS.contains(&k.as_str())),
        "{text}"
    );
    assert_eq!(body["amount"], "123.45", "what attribution needs is there");
    assert_eq!(body["reconciliation"]["status"], "matched");

    // Another account's transaction still looks absent to the partner.
    let outside = api
        .get(
            &format!("/v1/accounts/{OTHER_ACCOUNT}/transactions/{TRANSACTION}"),
            Some(&partner),
        )
        .await;
    assert_eq!(outside.status(), 404);
    api.stop().await;
}

#[tokio::test]
async fn only_an_admin_key_may_list_or_revoke_keys() {
    let api = Harness::start(Options::default()).await;
    let admin = api.key(Role::Admin, None).await;
    let finance = api.key(Role::Finance, None).await;
    let partner = api.key(Role::Partner, Some(&[ACCOUNT])).await;

    for key in [&finance, &partner] {
        let listing = api.get("/v1/api-keys", Some(key)).await;
        assert_eq!(listing.status(), 403);
        let body: Value = listing.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("admin"), "{body}");
        let revoke = api
            .http
            .delete(format!("{}/v1/api-keys/1", api.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(revoke.status(), 403);
    }
    assert_eq!(
        api.transaction(&finance).await.status(),
        200,
        "nothing revoked"
    );

    let listing = api.get("/v1/api-keys", Some(&admin)).await;
    assert_eq!(listing.status(), 200);
    let text = listing.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["keys"].as_array().unwrap().len(), 3);
    for key in [&admin, &finance, &partner] {
        assert!(!text.contains(key.as_str()), "a listing shows a key");
        let hash: String = recon_store::api_keys::hash(key)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.contains(&hash), "a listing shows a hash");
    }

    let finance_id = body["keys"][1]["id"].as_i64().unwrap();
    let revoke = api
        .http
        .delete(format!("{}/v1/api-keys/{finance_id}", api.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(api.transaction(&finance).await.status(), 401);
    api.stop().await;
}
