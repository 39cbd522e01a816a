//! Starting the simulator binary and reading what it serves: the helpers every test
//! that runs `recon-sim` (alone or behind a stack) shares.

use serde_json::Value;

use crate::binaries::{Running, free_port, wait_until_healthy};

/// `recon-sim` flags that lift Helcim's per-account rate limits (for tests that send
/// more than Helcim would allow).
pub const NO_RATE_LIMITS: [&str; 6] = [
    "--limit-in-flight",
    "0",
    "--limit-per-minute",
    "0",
    "--limit-per-hour",
    "0",
];

/// A running `recon-sim` and where it listens.
pub struct Sim {
    pub running: Running,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// Starts `recon-sim --addr <a free port>` with `args` after it, and waits until it
/// answers `/healthz`.
pub async fn start_sim(args: &[&str], env: &[(&str, String)]) -> Sim {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--addr", addr.as_str()];
    all.extend_from_slice(args);
    let running = Running::start("recon-sim", &all, env);
    let url = format!("http://{addr}");
    wait_until_healthy(&format!("{url}/healthz")).await;
    Sim { running, addr, url }
}

/// Sends `request` and reads the answer as JSON (whatever its status).
pub async fn json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The simulator's merchants, as `/sim/accounts` lists them.
pub async fn sim_accounts(http: &reqwest::Client, sim_url: &str) -> Vec<Value> {
    let listed = json(http.get(format!("{sim_url}/sim/accounts"))).await;
    serde_json::from_value(listed).unwrap()
}

/// The code of the first Smart Terminal in a `/v2/devices` answer that is `LISTENING`.
pub fn listening_device(devices: &Value) -> String {
    devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "LISTENING")
        .map(|d| d["code"].as_str().unwrap().to_string())
        .expect("a listening device")
}
