use std::sync::Arc;
use std::time::Duration;

use recon_receiver::accounts::{AccountSource, DatabaseAccounts};
use recon_receiver::config::Settings;
use recon_receiver::startup::Application;
use recon_store::accounts::NewAccount;
use recon_store::crypto::fingerprint;
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, SecretCipher};
use secrecy::SecretString;

use crate::helpers::*;

/// The token the account rotates to.
const ROTATED: &str = "cm90YXRlZC12ZXJpZmllci10b2tlbi0wMTIzNDU2Nzg=";

/// Accounts added, and tokens retired, while the receiver runs take effect without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_rotations_in_the_database_apply_without_a_restart() {
    let db = TestDatabase::create().await;
    let key = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let store = AccountStore::new(db.pool.clone(), Arc::new(SecretCipher::new(key, vec![])));
    let secret = |t: &str| SecretString::from(t.to_string());
    store
        .add(NewAccount {
            account_id: "first".into(),
            verifier_token: Some(secret(TOKEN_NEW)),
            ..NewAccount::default()
        })
        .await
        .unwrap();

    let prefix = unique_prefix();
    let mut settings = Settings::for_tests(&prefix);
    settings.account_refresh_secs = 1;
    let sources: Vec<Box<dyn AccountSource>> = vec![Box::new(DatabaseAccounts(store.clone()))];
    let app = Application::build(&settings, sources).await.unwrap();
    let receiver = TestReceiver {
        url: format!("http://127.0.0.1:{}", app.port()),
        topology: recon_queue::Topology::new(prefix),
        handle: app.handle(),
        http: reqwest::Client::new(),
    };
    tokio::spawn(app.run_until_stopped());

    assert_eq!(
        receiver
            .send_to("first", &card_transaction("msg_db_1", 1))
            .await
            .status(),
        200
    );
    assert_eq!(
        receiver
            .send_to("second", &card_transaction("msg_db_2", 2))
            .await
            .status(),
        404
    );

    // An operator adds the second account: found on the next miss, no restart.
    store
        .add(NewAccount {
            account_id: "second".into(),
            verifier_token: Some(secret(TOKEN_NEW)),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        receiver
            .send_to("second", &card_transaction("msg_db_3", 3))
            .await
            .status(),
        200
    );

    // A rotation: the old token is retired; within the refresh interval it stops verifying.
    store.add_verifier("first", &secret(ROTATED)).await.unwrap();
    store
        .retire_verifier("first", &fingerprint(&secret(TOKEN_NEW)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver
            .send_to("first", &card_transaction("msg_db_4", 4))
            .await
            .status(),
        401
    );
    let with_new = delivery(
        "msg_db_5",
        r#"{"id":"5","type":"cardTransaction"}"#,
        ROTATED,
        now(),
    );
    assert_eq!(receiver.send_to("first", &with_new).await.status(), 200);

    assert_eq!(receiver.work_queue_depth().await, 3);
    receiver.finish().await;
    db.drop_now().await;
}
