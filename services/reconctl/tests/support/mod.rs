//! What the reconctl tests share: running the built binary against a test database.

use std::process::Command;

use recon_store::testing::TestDatabase;

/// Runs `reconctl <args>` against `db`, with no close zone or clock offset inherited
/// from the environment; returns whether it succeeded and its stdout then stderr.
pub fn reconctl(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_reconctl"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "error")
        .env_remove("RECON_CLOSE_TIMEZONE")
        .env_remove("RECON_CLOCK_OFFSET_FILE")
        .output()
        .expect("reconctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
