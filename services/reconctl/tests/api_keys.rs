//! `reconctl api-keys create|list|revoke` as an operator runs them: the built binary
//! against a fresh Postgres database.

use recon_store::api_keys::{self, Verdict};
use recon_store::testing::TestDatabase;

mod support;
use secrecy::SecretString;

/// `reconctl api-keys <args>`.
fn reconctl(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    support::reconctl(db, &[&["api-keys"], args].concat())
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or_default().trim().to_string()
}

#[tokio::test]
async fn keys_are_created_with_an_expiry_listed_without_secrets_and_revoked_by_prefix() {
    let db = TestDatabase::create().await;
    let (ok, created) = reconctl(
        &db,
        &[
            "create",
            "--role",
            "partner",
            "--accounts",
            "a1,a2",
            "--expires-in",
            "30d",
        ],
    );
    assert!(ok, "{created}");
    let key = last_line(&created);
    let prefix = &key[..api_keys::PREFIX_LEN];
    assert!(created.contains("expires 20"), "{created}");
    let (ok, admin) = reconctl(
        &db,
        &[
            "create",
            "--role",
            "admin",
            "--expires-at",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert!(ok, "{admin}");
    let admin_key = last_line(&admin);

    let (ok, listing) = reconctl(&db, &["list"]);
    assert!(ok, "{listing}");
    assert!(
        listing.contains(prefix) && listing.contains("partner") && listing.contains("a1,a2"),
        "{listing}"
    );
    assert!(listing.contains("2099-01-01T00:00:00Z"), "{listing}");
    for secret in [&key, &admin_key] {
        assert!(
            !listing.contains(secret.as_str()),
            "the listing shows a key"
        );
        let hash: String = api_keys::hash(secret)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!listing.contains(&hash), "the listing shows a hash");
    }

    let (ok, revoked) = reconctl(&db, &["revoke", prefix]);
    assert!(ok && revoked.contains("revoked partner key"), "{revoked}");
    let verdict = api_keys::look_up(&db.pool, &SecretString::from(key.clone()))
        .await
        .unwrap();
    assert_eq!(verdict, Verdict::Revoked);
    let (_, listing) = reconctl(&db, &["list"]);
    let row = listing.lines().find(|l| l.contains(prefix)).unwrap();
    assert!(
        !row.trim_end().ends_with('-'),
        "the revoked time shows: {row}"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn bad_expiries_and_unknown_keys_get_errors_that_say_what_to_do() {
    let db = TestDatabase::create().await;
    let (ok, text) = reconctl(&db, &["create", "--role", "finance", "--expires-in", "10"]);
    assert!(!ok && text.contains("e.g. 90d"), "{text}");
    let (ok, text) = reconctl(
        &db,
        &[
            "create",
            "--role",
            "finance",
            "--expires-at",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert!(!ok && text.contains("in the past"), "{text}");
    let (ok, text) = reconctl(&db, &["revoke", "hrk_nothing"]);
    assert!(!ok && text.contains("api-keys list"), "{text}");
    db.drop_now().await;
}
