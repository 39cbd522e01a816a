//! Keys for secrets at rest are secrets too: like every other one they may come from
//! the file a `NAME_FILE` variable names (how orchestrators mount secrets), never only
//! from a variable that ends up in `/proc/PID/environ` and deployment manifests.

use std::collections::HashMap;
use std::path::PathBuf;

use recon_store::intake::{IntakePublicKey, IntakeSecretKey, IntakeSecretKeys};
use recon_store::{MasterKey, Purpose, SecretCipher};
use secrecy::{ExposeSecret, SecretString};

/// A file holding `text` (with the trailing newline editors add), removed on drop.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(tag: &str, text: &SecretString) -> Self {
        let path = std::env::temp_dir().join(format!(
            "recon-key-file-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, format!("{}\n", text.expose_secret())).unwrap();
        SecretFile(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn lookup(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn the_master_key_is_read_from_the_file_recon_master_key_file_names() {
    let text = MasterKey::generate();
    let master = MasterKey::from_base64(&text, "TEST").unwrap();
    let file = SecretFile::new("master", &text);
    let env = lookup(&[("RECON_MASTER_KEY_FILE", file.path())]);

    let cipher = SecretCipher::from_lookup(&env).unwrap();
    let same = SecretCipher::new(master.clone(), vec![]);
    for purpose in Purpose::ALL {
        assert_eq!(
            cipher.current_key_id(purpose),
            same.current_key_id(purpose),
            "{purpose:?}"
        );
    }
    let public = IntakePublicKey::from_lookup(&env).unwrap().unwrap();
    assert_eq!(
        public.to_base64(),
        IntakeSecretKey::derive(&master).public().to_base64()
    );
    assert!(IntakeSecretKeys::from_lookup(&env).unwrap().is_some());
}

#[test]
fn a_purpose_key_and_the_intake_private_key_are_read_from_their_files() {
    let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
    let verifier = SecretFile::new("verifier", &master.derive_base64(Purpose::Verifier));
    let intake = IntakeSecretKey::derive(&master);
    let intake_file = SecretFile::new("intake", &intake.to_base64());
    let env = lookup(&[
        ("RECON_VERIFIER_KEY_FILE", verifier.path()),
        ("RECON_INTAKE_PRIVATE_KEY_FILE", intake_file.path()),
    ]);

    let cipher = SecretCipher::from_lookup(&env).unwrap();
    assert!(cipher.holds(Purpose::Verifier));
    assert!(!cipher.holds(Purpose::ApiToken));
    let keys = IntakeSecretKeys::from_lookup(&env).unwrap().unwrap();
    let sealed = intake.public().seal(b"connected-token");
    assert_eq!(keys.open(&sealed).unwrap(), b"connected-token");
}

#[test]
fn a_key_in_both_the_variable_and_a_file_is_refused_without_showing_it() {
    let text = MasterKey::generate();
    let file = SecretFile::new("both", &text);
    let env = lookup(&[
        ("RECON_MASTER_KEY", text.expose_secret().to_string()),
        ("RECON_MASTER_KEY_FILE", file.path()),
    ]);
    let error = SecretCipher::from_lookup(&env).unwrap_err();
    let shown = format!("{error:#} {error:?}");
    assert!(shown.contains("RECON_MASTER_KEY_FILE"), "{shown}");
    assert!(!shown.contains(text.expose_secret()), "{shown}");
}
