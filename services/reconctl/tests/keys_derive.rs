//! `reconctl keys derive` as an operator runs it: the master key comes from the
//! environment or from a mounted file, like every other secret, never from a flag.

use std::process::Command;

use recon_store::MasterKey;
use secrecy::ExposeSecret;

fn derive(env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reconctl"));
    command
        .args(["keys", "derive"])
        .env_remove("RECON_MASTER_KEY")
        .env_remove("RECON_MASTER_KEY_FILE")
        .env("RUST_LOG", "error");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("reconctl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn keys_derive_reads_the_master_key_from_the_file_recon_master_key_file_names() {
    let master = MasterKey::generate();
    let path = std::env::temp_dir().join(format!("reconctl-master-key-{}", std::process::id()));
    std::fs::write(&path, format!("{}\n", master.expose_secret())).unwrap();

    let (ok_var, from_var, _) = derive(&[("RECON_MASTER_KEY", master.expose_secret())]);
    let (ok_file, from_file, err_file) =
        derive(&[("RECON_MASTER_KEY_FILE", path.to_str().unwrap())]);
    std::fs::remove_file(&path).unwrap();

    assert!(ok_var && ok_file, "{err_file}");
    assert!(from_file.contains("RECON_VERIFIER_KEY="), "{from_file}");
    assert_eq!(from_file, from_var, "the same keys either way");
}

#[test]
fn keys_derive_without_a_master_key_says_which_variables_to_set() {
    let (ok, _, stderr) = derive(&[]);
    assert!(!ok);
    assert!(stderr.contains("RECON_MASTER_KEY_FILE"), "{stderr}");
}
