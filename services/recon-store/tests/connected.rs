//! Connected accounts against a real Postgres.

use std::sync::Arc;

use chrono::{Duration, Utc};
use recon_store::connected::{ConnectedAccount, ConnectedAccounts};
use recon_store::testing::TestDatabase;
use recon_store::{MasterKey, Purpose, SecretCipher};
use secrecy::{ExposeSecret, SecretString};

#[tokio::test]
async fn a_connected_account_token_is_stored_encrypted_and_an_older_delivery_never_replaces_a_newer_one()
 {
    let db = TestDatabase::create().await;
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let worker = Arc::new(SecretCipher::from_data_keys(
        vec![master.derive(Purpose::ApiToken)],
        vec![],
    ));
    let store = ConnectedAccounts::new(db.pool.clone(), worker);
    let now = Utc::now();
    let deliver = |token: &'static str, webhook_id: &'static str, at| {
        let store = store.clone();
        async move {
            let token = SecretString::from(token.to_string());
            store
                .upsert(&ConnectedAccount {
                    account_id: "partner",
                    connected_account_id: "ca-1",
                    api_token: &token,
                    webhook_id,
                    helcim_timestamp: at,
                })
                .await
                .unwrap()
        }
    };
    deliver("newer-token", "msg_2", now).await;
    deliver("older-token", "msg_1", now - Duration::seconds(60)).await;
    let token = store.api_token("partner", "ca-1").await.unwrap().unwrap();
    assert_eq!(token.expose_secret(), "newer-token");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT api_token_encrypted FROM connected_accounts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        !stored.windows(5).any(|w| w == b"newer"),
        "encrypted at rest"
    );

    // A verifier-only process cannot read it.
    let receiver = ConnectedAccounts::new(
        db.pool.clone(),
        Arc::new(SecretCipher::from_data_keys(
            vec![master.derive(Purpose::Verifier)],
            vec![],
        )),
    );
    assert!(receiver.api_token("partner", "ca-1").await.is_err());
    assert_eq!(
        store
            .api_token("partner", "other")
            .await
            .unwrap()
            .map(|_| ()),
        None
    );
    db.drop_now().await;
}
