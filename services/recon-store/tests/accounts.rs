//! Accounts and tokens against a real Postgres, a fresh database per test.

use std::sync::Arc;

use recon_store::accounts::NewAccount;
use recon_store::crypto::fingerprint;
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, SecretCipher, StoreError, database};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_string())
}

fn cipher_with(current: &MasterKey, previous: &[MasterKey]) -> Arc<SecretCipher> {
    Arc::new(SecretCipher::new(current.clone(), previous.to_vec()))
}

fn new_key() -> MasterKey {
    MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap()
}

#[tokio::test]
async fn migrate_creates_the_database_once_and_repeats_harmlessly() {
    let db = TestDatabase::create().await;
    assert!(
        !database::create_database_if_missing(&db.url).await.unwrap(),
        "already there"
    );
    database::migrate(&db.pool).await.unwrap();
    database::migrate(&db.pool).await.unwrap();
    db.drop_now().await;
}

#[tokio::test]
async fn tokens_are_stored_encrypted_and_listed_by_fingerprint_only() {
    let db = TestDatabase::create().await;
    let store = AccountStore::new(db.pool.clone(), cipher_with(&new_key(), &[]));
    let verifier = "dmVyaWZpZXItdG9rZW4tcGxhaW4tdGV4dA==";
    store
        .add(NewAccount {
            account_id: "merchant-1".into(),
            verifier_token: Some(secret(verifier)),
            api_token: Some(secret("api-token-plain-text")),
            partner_token: Some(secret("f29104118c0d65")),
            ..NewAccount::default()
        })
        .await
        .unwrap();

    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].active_verifiers,
        vec![fingerprint(&secret(verifier))]
    );
    assert!(listed[0].has_api_token && listed[0].has_partner_token);

    // No clear text anywhere in the rows.
    let rows = sqlx::query("SELECT a.*, v.token_encrypted FROM accounts a JOIN account_verifier_tokens v USING (account_id)")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    for column in [
        "api_token_encrypted",
        "partner_token_encrypted",
        "token_encrypted",
    ] {
        let blob: Vec<u8> = rows[0].try_get(column).unwrap();
        for plain in [verifier, "api-token-plain-text", "f29104118c0d65"] {
            assert!(
                !blob.windows(plain.len()).any(|w| w == plain.as_bytes()),
                "{column} holds clear text"
            );
        }
    }
    let tokens = store.active_verifier_tokens().await.unwrap();
    assert_eq!(tokens[0].1.as_ref().unwrap().expose_secret(), verifier);
    db.drop_now().await;
}

#[tokio::test]
async fn bad_or_duplicate_accounts_are_refused_with_the_reason() {
    let db = TestDatabase::create().await;
    let store = AccountStore::new(db.pool.clone(), cipher_with(&new_key(), &[]));
    let add = |id: &str| NewAccount {
        account_id: id.into(),
        ..NewAccount::default()
    };
    store.add(add("m1")).await.unwrap();
    assert!(matches!(
        store.add(add("m1")).await,
        Err(StoreError::AccountExists(_))
    ));
    assert!(matches!(
        store.add(add("has space")).await,
        Err(StoreError::BadAccountId(_))
    ));
    assert!(matches!(
        store.add_verifier("ghost", &secret("dA==")).await,
        Err(StoreError::NoSuchAccount(_))
    ));
    db.drop_now().await;
}

#[tokio::test]
async fn a_verifier_rotation_keeps_both_tokens_active_until_the_old_one_is_retired() {
    let db = TestDatabase::create().await;
    let store = AccountStore::new(db.pool.clone(), cipher_with(&new_key(), &[]));
    let (old, new) = (secret("b2xk"), secret("bmV3"));
    store
        .add(NewAccount {
            account_id: "m1".into(),
            verifier_token: Some(old.clone()),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    let new_print = store.add_verifier("m1", &new).await.unwrap();
    assert!(matches!(
        store.add_verifier("m1", &new).await,
        Err(StoreError::TokenExists(_))
    ));
    assert_eq!(store.active_verifier_tokens().await.unwrap().len(), 2);

    store
        .retire_verifier("m1", &fingerprint(&old))
        .await
        .unwrap();
    let active = store.active_verifier_tokens().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].1.as_ref().unwrap().expose_secret(), "bmV3");
    assert_eq!(
        store.list().await.unwrap()[0].active_verifiers,
        vec![new_print]
    );
    assert!(matches!(
        store.retire_verifier("m1", "000000000000").await,
        Err(StoreError::NoSuchToken { .. })
    ));
    db.drop_now().await;
}

#[tokio::test]
async fn a_master_key_rotation_reencrypts_every_secret() {
    let db = TestDatabase::create().await;
    let (old_key, new_key) = (new_key(), new_key());
    let before = AccountStore::new(db.pool.clone(), cipher_with(&old_key, &[]));
    for id in ["m1", "m2"] {
        before
            .add(NewAccount {
                account_id: id.into(),
                verifier_token: Some(secret("dG9rZW4=")),
                api_token: Some(secret("api")),
                ..NewAccount::default()
            })
            .await
            .unwrap();
    }
    let during = AccountStore::new(db.pool.clone(), cipher_with(&new_key, &[old_key]));
    assert_eq!(
        during.reencrypt_stale().await.unwrap(),
        4,
        "two verifier and two API tokens"
    );
    assert_eq!(
        during.reencrypt_stale().await.unwrap(),
        0,
        "nothing left to do"
    );
    let after = AccountStore::new(db.pool.clone(), cipher_with(&new_key, &[]));
    let tokens = after.active_verifier_tokens().await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens.iter().all(|(_, t)| t.is_ok()),
        "readable with the new key alone"
    );

    // A key that made none of them reads none, and says so row by row.
    let unrelated = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let stranger = AccountStore::new(db.pool.clone(), cipher_with(&unrelated, &[]));
    let tokens = stranger.active_verifier_tokens().await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .all(|(_, t)| matches!(t, Err(recon_store::crypto::CryptoError::UnknownKey(_))))
    );
    db.drop_now().await;
}

#[tokio::test]
async fn version_1_secrets_are_upgraded_to_purpose_keys_by_reencrypt() {
    use recon_store::Purpose;
    use recon_store::connected::{ConnectedAccount, ConnectedAccounts};
    use recon_store::crypto::legacy_encrypt;

    let db = TestDatabase::create().await;
    let master = new_key();
    // Rows as a release before purpose keys wrote them: version 1, under the master key.
    sqlx::query("INSERT INTO accounts (account_id, api_token_encrypted) VALUES ('old', $1)")
        .bind(legacy_encrypt(
            &master,
            &secret("old-api"),
            "accounts/old/api-token",
        ))
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO account_verifier_tokens (account_id, token_encrypted, fingerprint) VALUES ('old', $1, 'f')",
    )
    .bind(legacy_encrypt(&master, &secret("dG9rZW4="), "accounts/old/verifier-token"))
    .execute(&db.pool)
    .await
    .unwrap();
    let receiver_keys = || {
        Arc::new(SecretCipher::from_data_keys(
            vec![master.derive(Purpose::Verifier)],
            vec![],
        ))
    };
    let receiver = AccountStore::new(db.pool.clone(), receiver_keys());
    let before = receiver.active_verifier_tokens().await.unwrap();
    assert!(
        matches!(
            before[0].1,
            Err(recon_store::crypto::CryptoError::NeedsMasterKey)
        ),
        "a purpose key alone cannot read version 1"
    );

    let operator = AccountStore::new(db.pool.clone(), cipher_with(&master, &[]));
    let connected = ConnectedAccounts::new(db.pool.clone(), cipher_with(&master, &[]));
    connected
        .upsert(&ConnectedAccount {
            account_id: "old",
            connected_account_id: "42",
            api_token: &secret("connected-api"),
            webhook_id: "msg_1",
            helcim_timestamp: chrono::Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(
        operator.reencrypt_stale().await.unwrap(),
        2,
        "the two version-1 rows"
    );

    let after = receiver.active_verifier_tokens().await.unwrap();
    assert_eq!(after[0].1.as_ref().unwrap().expose_secret(), "dG9rZW4=");
    let worker_keys = Arc::new(SecretCipher::from_data_keys(
        vec![master.derive(Purpose::ApiToken)],
        vec![],
    ));
    let worker = AccountStore::new(db.pool.clone(), worker_keys.clone());
    assert_eq!(
        worker.api_tokens().await.unwrap()[0]
            .1
            .as_ref()
            .unwrap()
            .expose_secret(),
        "old-api"
    );

    // Rotating the master key: everything, connected accounts too, moves to the new
    // purpose keys.
    let next = new_key();
    let rotating = AccountStore::new(
        db.pool.clone(),
        cipher_with(&next, std::slice::from_ref(&master)),
    );
    assert_eq!(rotating.reencrypt_stale().await.unwrap(), 3);
    let connected_after = ConnectedAccounts::new(
        db.pool.clone(),
        Arc::new(SecretCipher::from_data_keys(
            vec![next.derive(Purpose::ApiToken)],
            vec![],
        )),
    );
    assert_eq!(
        connected_after
            .api_token("old", "42")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "connected-api"
    );
    db.drop_now().await;
}
