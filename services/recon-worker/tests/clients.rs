//! Clients of one account share one limiter, however many jobs ask for them at once.

use std::sync::Arc;

use helcim_client::AccountLimits;
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, SecretCipher};
use recon_worker::clients::HelcimClients;
use secrecy::SecretString;

#[tokio::test]
async fn concurrent_first_requests_for_an_account_share_one_limiter() {
    let db = TestDatabase::create().await;
    let key = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let store = AccountStore::new(db.pool.clone(), Arc::new(SecretCipher::new(key, vec![])));
    store
        .upsert_tokens("m1", &SecretString::from("api-token".to_string()), None)
        .await
        .unwrap();
    let clients = HelcimClients::new(store, "http://127.0.0.1:9/v2", AccountLimits::HELCIM);
    let built = futures::future::join_all((0..32).map(|_| clients.get("m1"))).await;
    let first = built[0].as_ref().unwrap().limiter().clone();
    for client in &built {
        assert!(Arc::ptr_eq(client.as_ref().unwrap().limiter(), &first));
    }
    assert!(
        clients.get("nobody").await.is_err(),
        "an account without a token has no client"
    );
    db.drop_now().await;
}
