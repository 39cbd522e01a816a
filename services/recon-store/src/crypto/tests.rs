use secrecy::{ExposeSecret, SecretString};

use super::*;

fn master() -> MasterKey {
    MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_string())
}

#[test]
fn a_secret_round_trips_only_with_its_purpose_and_context() {
    let cipher = SecretCipher::new(master(), vec![]);
    let blob = cipher
        .encrypt(
            Purpose::Verifier,
            &secret("verifier-token"),
            "account:a:verifier",
        )
        .unwrap();
    assert!(
        !blob.windows(8).any(|w| w == b"verifier"),
        "no plaintext in the blob"
    );
    assert_eq!(blob[0], VERSION);
    let open = |purpose, blob: &[u8], context| cipher.decrypt(purpose, blob, context);
    assert_eq!(
        open(Purpose::Verifier, &blob, "account:a:verifier")
            .unwrap()
            .expose_secret(),
        "verifier-token"
    );
    assert_eq!(
        open(Purpose::Verifier, &blob, "account:b:verifier").unwrap_err(),
        CryptoError::Tampered
    );
    assert_eq!(
        open(Purpose::ApiToken, &blob, "account:a:verifier").unwrap_err(),
        CryptoError::Tampered
    );
    let mut flipped = blob.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(
        open(Purpose::Verifier, &flipped, "account:a:verifier").unwrap_err(),
        CryptoError::Tampered
    );
    assert_eq!(
        open(Purpose::Verifier, b"short", "x").unwrap_err(),
        CryptoError::Malformed
    );
}

#[test]
fn a_process_given_only_the_verifier_key_cannot_decrypt_an_api_token() {
    let m = master();
    let everything = SecretCipher::new(m.clone(), vec![]);
    let api = everything
        .encrypt(Purpose::ApiToken, &secret("api"), "c")
        .unwrap();
    let verifier = everything
        .encrypt(Purpose::Verifier, &secret("v"), "c")
        .unwrap();
    let receiver = SecretCipher::from_data_keys(vec![m.derive(Purpose::Verifier)], vec![]);
    assert_eq!(
        receiver
            .decrypt(Purpose::Verifier, &verifier, "c")
            .unwrap()
            .expose_secret(),
        "v"
    );
    assert_eq!(
        receiver.decrypt(Purpose::ApiToken, &api, "c").unwrap_err(),
        CryptoError::NoKey("API token", "RECON_API_TOKEN_KEY")
    );
    // Nor by claiming the blob is a verifier token: the purpose is authenticated.
    let mut relabelled = api.clone();
    relabelled[1] = Purpose::Verifier.code();
    assert!(
        receiver
            .decrypt(Purpose::Verifier, &relabelled, "c")
            .is_err()
    );
    // A master key held for the upgrade does not widen a restricted cipher either.
    let restricted = SecretCipher::new(m, vec![]).restricted_to(&[Purpose::Verifier], true);
    assert!(matches!(
        restricted.decrypt(Purpose::ApiToken, &api, "c"),
        Err(CryptoError::NoKey(..))
    ));
}

#[test]
fn purpose_keys_are_derived_deterministically_and_differ() {
    let m = master();
    let ids: Vec<String> = Purpose::ALL.iter().map(|p| m.derive(*p).id_hex()).collect();
    assert_eq!(
        ids,
        Purpose::ALL
            .iter()
            .map(|p| m.derive(*p).id_hex())
            .collect::<Vec<_>>()
    );
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    let given =
        DataKey::from_base64(Purpose::ApiToken, &m.derive_base64(Purpose::ApiToken)).unwrap();
    assert_eq!(given.id_hex(), ids[1]);
}

#[test]
fn rotation_reads_old_ciphertexts_and_flags_them_stale() {
    let (old, new) = (master(), master());
    let before = SecretCipher::new(old.clone(), vec![]);
    let blob = before
        .encrypt(Purpose::ApiToken, &secret("t"), "c")
        .unwrap();
    let during = SecretCipher::new(new.clone(), vec![old]);
    assert!(during.is_stale(Purpose::ApiToken, &blob));
    assert_eq!(
        during
            .decrypt(Purpose::ApiToken, &blob, "c")
            .unwrap()
            .expose_secret(),
        "t"
    );
    let fresh = during
        .encrypt(Purpose::ApiToken, &secret("t"), "c")
        .unwrap();
    assert!(!during.is_stale(Purpose::ApiToken, &fresh));
    let after = SecretCipher::new(new, vec![]);
    assert!(matches!(
        after.decrypt(Purpose::ApiToken, &blob, "c"),
        Err(CryptoError::UnknownKey(_))
    ));
}

#[test]
fn version_1_ciphertexts_need_the_master_key_and_are_stale() {
    let m = master();
    let legacy = legacy_encrypt(&m, &secret("old"), "c");
    let with_master = SecretCipher::new(m.clone(), vec![]);
    assert!(with_master.is_stale(Purpose::Verifier, &legacy));
    assert_eq!(
        with_master
            .decrypt(Purpose::Verifier, &legacy, "c")
            .unwrap()
            .expose_secret(),
        "old"
    );
    let purpose_only = SecretCipher::from_data_keys(vec![m.derive(Purpose::Verifier)], vec![]);
    assert_eq!(
        purpose_only
            .decrypt(Purpose::Verifier, &legacy, "c")
            .unwrap_err(),
        CryptoError::NeedsMasterKey
    );
}

#[test]
fn bad_keys_are_refused_without_echoing_them() {
    for bad in ["", "not base64!", "c2hvcnQ="] {
        let err = MasterKey::from_base64(&secret(bad), "RECON_MASTER_KEY").unwrap_err();
        assert_eq!(err, CryptoError::BadKey("RECON_MASTER_KEY"));
        let err = DataKey::from_base64(Purpose::Verifier, &secret(bad)).unwrap_err();
        assert_eq!(err, CryptoError::BadKey("RECON_VERIFIER_KEY"));
    }
    let m = master();
    assert!(format!("{m:?}").starts_with("MasterKey(id "));
    assert!(format!("{:?}", m.derive(Purpose::Verifier)).starts_with("DataKey(Verifier, key id "));
}

#[test]
fn fingerprints_are_stable_and_short() {
    let token = secret("abc");
    assert_eq!(fingerprint(&token), "ba7816bf8f01");
    assert_eq!(fingerprint(&token).len(), 12);
}
