//! Connected accounts registered as accounts, against a real Postgres: what the worker
//! does with each `connectedAccount` delivery, through `ConnectedAccounts::record`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use recon_store::accounts::NewAccount;
use recon_store::connected::{ConnectedAccount, ConnectedAccounts, Registration};
use recon_store::testing::TestDatabase;
use recon_store::{AccountStore, MasterKey, PartnerTokenSource, Purpose, SecretCipher};
use secrecy::{ExposeSecret, SecretString};

struct Keys {
    master: MasterKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            master: MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap(),
        }
    }

    /// What a worker holds: the API-token key, and the lookup key when asked.
    fn worker(&self, lookup: bool) -> Arc<SecretCipher> {
        let cipher =
            SecretCipher::from_data_keys(vec![self.master.derive(Purpose::ApiToken)], vec![]);
        Arc::new(if lookup {
            cipher.with_lookup_keys(self.master.derive_lookup(), vec![])
        } else {
            cipher
        })
    }
}

fn operator(db: &TestDatabase, keys: &Keys) -> AccountStore {
    AccountStore::new(
        db.pool.clone(),
        Arc::new(SecretCipher::new(keys.master.clone(), vec![])),
    )
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_string())
}

fn at(seconds: i64) -> DateTime<Utc> {
    "2026-11-02T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(seconds)
}

/// One delivery of a `connectedAccount` webhook to `referrer`.
async fn deliver(
    store: &ConnectedAccounts,
    referrer: &str,
    connected_id: &str,
    token: &str,
    webhook_id: &str,
    when: DateTime<Utc>,
    register: bool,
) -> Registration {
    store
        .record(
            &ConnectedAccount {
                account_id: referrer,
                connected_account_id: connected_id,
                api_token: &secret(token),
                webhook_id,
                helcim_timestamp: when,
            },
            register,
        )
        .await
        .unwrap()
        .registration
}

async fn add_partner(db: &TestDatabase, keys: &Keys, id: &str, partner_token: Option<&str>) {
    operator(db, keys)
        .add(NewAccount {
            account_id: id.into(),
            partner_token: partner_token.map(secret),
            ..NewAccount::default()
        })
        .await
        .unwrap();
}

/// The account row as bytes and text, to prove "nothing changed".
async fn account_row(
    db: &TestDatabase,
    id: &str,
) -> Option<(
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
)> {
    sqlx::query_as(
        "SELECT api_token_encrypted, api_token_lookup, referred_by, connected_account_id, updated_at
         FROM accounts WHERE account_id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .unwrap()
}

async fn token_of(store: &AccountStore, id: &str) -> Option<String> {
    store
        .api_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|(account, _)| account == id)
        .map(|(_, token)| token.unwrap().expose_secret().to_string())
}

#[tokio::test]
async fn a_connected_account_is_registered_with_its_token_encrypted_fingerprinted_and_its_referrer()
{
    let db = TestDatabase::create().await;
    let keys = Keys::new();
    add_partner(&db, &keys, "partner", Some("partner-secret")).await;
    let store = ConnectedAccounts::new(db.pool.clone(), keys.worker(true));
    let registered = deliver(&store, "partner", "981", "tok-981-a", "msg_1", at(0), true).await;
    assert_eq!(
        registered,
        Registration::Registered {
            account_id: "connected-981".into(),
            fingerprinted: true
        }
    );
    let (blob, lookup, referred_by, connected_id, _) =
        account_row(&db, "connected-981").await.unwrap();
    assert!(
        !blob
            .unwrap()
            .windows(b"tok-981".len())
            .any(|w| w == b"tok-981"),
        "encrypted at rest"
    );
    assert_eq!(
        lookup.as_deref(),
        Some(
            keys.master
                .derive_lookup()
                .fingerprint("tok-981-a")
                .as_str()
        )
    );
    assert_eq!(referred_by.as_deref(), Some("partner"));
    assert_eq!(connected_id.as_deref(), Some("981"));

    // The worker's clients read it like any account's token (context accounts/{id}/api-token).
    let worker_accounts = AccountStore::new(db.pool.clone(), keys.worker(false));
    assert_eq!(
        token_of(&worker_accounts, "connected-981").await.as_deref(),
        Some("tok-981-a")
    );
    let listed = operator(&db, &keys).list().await.unwrap();
    let connected = listed
        .iter()
        .find(|a| a.account_id == "connected-981")
        .unwrap();
    assert_eq!(
        connected.partner_token,
        PartnerTokenSource::FromReferrer("partner".into())
    );
    assert!(connected.has_api_token && connected.active_verifiers.is_empty());
    assert_eq!(
        store
            .api_token("partner", "981")
            .await
            .unwrap()
            .map(|t| t.expose_secret().to_string()),
        Some("tok-981-a".to_string()),
        "the connected_accounts row is kept as before"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_redelivery_or_an_older_delivery_changes_nothing_and_a_newer_token_replaces() {
    let db = TestDatabase::create().await;
    let keys = Keys::new();
    add_partner(&db, &keys, "partner", None).await;
    let store = ConnectedAccounts::new(db.pool.clone(), keys.worker(true));
    let worker_accounts = AccountStore::new(db.pool.clone(), keys.worker(false));
    deliver(&store, "partner", "981", "tok-b", "msg_2", at(60), true).await;
    let first = account_row(&db, "connected-981").await;
    let unchanged = Registration::Unchanged {
        account_id: "connected-981".into(),
    };
    assert_eq!(
        deliver(&store, "partner", "981", "tok-b", "msg_2", at(60), true).await,
        unchanged,
        "a redelivery"
    );
    assert_eq!(
        deliver(&store, "partner", "981", "tok-a", "msg_1", at(0), true).await,
        unchanged,
        "an older delivery processed late"
    );
    assert_eq!(
        account_row(&db, "connected-981").await,
        first,
        "not a byte changed"
    );
    assert_eq!(
        token_of(&worker_accounts, "connected-981").await.as_deref(),
        Some("tok-b")
    );

    assert_eq!(
        deliver(&store, "partner", "981", "tok-c", "msg_3", at(120), true).await,
        Registration::Updated {
            account_id: "connected-981".into(),
            fingerprinted: true
        }
    );
    assert_eq!(
        token_of(&worker_accounts, "connected-981").await.as_deref(),
        Some("tok-c")
    );
    let (_, lookup, ..) = account_row(&db, "connected-981").await.unwrap();
    assert_eq!(
        lookup.unwrap(),
        keys.master.derive_lookup().fingerprint("tok-c"),
        "the fingerprint follows the token"
    );
    // A newer delivery announcing the token the account already has rewrites nothing.
    let before = account_row(&db, "connected-981").await;
    assert_eq!(
        deliver(&store, "partner", "981", "tok-c", "msg_4", at(180), true).await,
        unchanged
    );
    assert_eq!(account_row(&db, "connected-981").await, before);

    // The same merchant announced to a second partner account: an older delivery there
    // does not replace the first partner's newer token; the first referrer stays.
    add_partner(&db, &keys, "partner-2", None).await;
    assert_eq!(
        deliver(
            &store,
            "partner-2",
            "981",
            "tok-old",
            "msg_p2",
            at(30),
            true
        )
        .await,
        unchanged
    );
    assert_eq!(
        deliver(
            &store,
            "partner-2",
            "981",
            "tok-d",
            "msg_p2b",
            at(240),
            true
        )
        .await,
        Registration::Updated {
            account_id: "connected-981".into(),
            fingerprinted: true
        }
    );
    let (_, _, referred_by, ..) = account_row(&db, "connected-981").await.unwrap();
    assert_eq!(referred_by.as_deref(), Some("partner"));
    assert_eq!(
        token_of(&worker_accounts, "connected-981").await.as_deref(),
        Some("tok-d")
    );
    db.drop_now().await;
}

#[tokio::test]
async fn an_operator_made_account_at_the_derived_id_or_with_the_same_token_is_never_taken_over() {
    let db = TestDatabase::create().await;
    let keys = Keys::new();
    add_partner(&db, &keys, "partner", None).await;
    let operator = operator(&db, &keys);
    operator
        .add(NewAccount {
            account_id: "connected-981".into(),
            api_token: Some(secret("operators-own-token")),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    operator
        .add(NewAccount {
            account_id: "acme".into(),
            api_token: Some(secret("tok-acme")),
            ..NewAccount::default()
        })
        .await
        .unwrap();
    let before = (
        account_row(&db, "connected-981").await,
        account_row(&db, "acme").await,
    );
    for lookup in [true, false] {
        let store = ConnectedAccounts::new(db.pool.clone(), keys.worker(lookup));
        let id = format!("msg_{lookup}");
        assert_eq!(
            deliver(&store, "partner", "981", "tok-981", &id, at(0), true).await,
            Registration::IdTaken {
                account_id: "connected-981".into()
            },
            "lookup key held: {lookup}"
        );
        // The same merchant the operator registered by hand as `acme`, announced: found
        // by the lookup fingerprint, or (no lookup key) by decrypting the stored tokens.
        assert_eq!(
            deliver(
                &store,
                "partner",
                "982",
                "tok-acme",
                &format!("{id}_acme"),
                at(0),
                true
            )
            .await,
            Registration::TokenRegistered {
                account_id: "connected-982".into(),
                existing: "acme".into()
            },
            "lookup key held: {lookup}"
        );
    }
    assert_eq!(
        (
            account_row(&db, "connected-981").await,
            account_row(&db, "acme").await
        ),
        before,
        "neither operator account changed"
    );
    assert_eq!(account_row(&db, "connected-982").await, None);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM connected_accounts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        kept, 2,
        "the tokens are kept in connected_accounts all the same"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_referrer_configured_by_environment_alone_leaves_referred_by_empty() {
    let db = TestDatabase::create().await;
    let keys = Keys::new();
    let store = ConnectedAccounts::new(db.pool.clone(), keys.worker(true));
    assert!(matches!(
        deliver(&store, "default", "981", "tok", "msg_1", at(0), true).await,
        Registration::Registered { .. }
    ));
    let (_, _, referred_by, connected_id, _) = account_row(&db, "connected-981").await.unwrap();
    assert_eq!((referred_by, connected_id.as_deref()), (None, Some("981")));
    db.drop_now().await;
}

#[tokio::test]
async fn switched_off_only_the_connected_accounts_row_is_kept() {
    let db = TestDatabase::create().await;
    let keys = Keys::new();
    add_partner(&db, &keys, "partner", None).await;
    let store = ConnectedAccounts::new(db.pool.clone(), keys.worker(true));
    assert_eq!(
        deliver(&store, "partner", "981", "tok", "msg_1", at(0), false).await,
        Registration::Off
    );
    assert_eq!(account_row(&db, "connected-981").await, None);
    assert!(store.api_token("partner", "981").await.unwrap().is_some());
    db.drop_now().await;
}

#[tokio::test]
async fn without_the_lookup_key_the_account_is_registered_unfingerprinted_until_a_process_with_it_runs()
 {
    let db = TestDatabase::create().await;
    let keys = Keys::new();
    add_partner(&db, &keys, "partner", None).await;
    let store = ConnectedAccounts::new(db.pool.clone(), keys.worker(false));
    assert_eq!(
        deliver(&store, "partner", "ca 77/x", "tok-77", "msg_1", at(0), true).await,
        Registration::Registered {
            account_id: recon_store::connected::account_id_for("ca 77/x"),
            fingerprinted: false
        }
    );
    let id = recon_store::connected::account_id_for("ca 77/x");
    assert!(id.starts_with("connected."), "{id}");
    let (_, lookup, ..) = account_row(&db, &id).await.unwrap();
    assert_eq!(lookup, None);
    let with_lookup = AccountStore::new(db.pool.clone(), keys.worker(true));
    assert_eq!(with_lookup.fingerprint_api_tokens().await.unwrap(), 1);
    let (_, lookup, ..) = account_row(&db, &id).await.unwrap();
    assert_eq!(
        lookup.unwrap(),
        keys.master.derive_lookup().fingerprint("tok-77")
    );
    db.drop_now().await;
}
