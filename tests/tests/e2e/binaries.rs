//! Finding, starting and stopping the workspace's binaries.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `target/<profile>/`, where cargo put this test and the binaries.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Running {
    pub child: Child,
}

impl Running {
    pub fn start(name: &str, args: &[&str], env: &[(&str, String)]) -> Running {
        let child = Command::new(binary(name))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "pretty")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
        Running { child }
    }

    /// Like [`Running::start`], with standard output and error appended to `log`.
    pub fn start_logged(
        name: &str,
        args: &[&str],
        env: &[(&str, String)],
        log: &std::path::Path,
    ) -> Running {
        let file = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap()
        };
        let child = Command::new(binary(name))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("LOG_FORMAT", "json")
            .stdout(file())
            .stderr(file())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
        Running { child }
    }

    /// SIGKILL, and waits until the process is gone (so its port is free again).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.wait(within).expect("the process exits after SIGTERM")
    }

    pub fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run_ok(name: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let output = Command::new(binary(name))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("could not run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Polls `url` until it answers 200.
pub async fn wait_until_healthy(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become healthy within 30 s");
}

/// The sum of the values of `name` that a binary's `/metrics` (at `metrics_url`) shows,
/// over the series whose line contains `filter` (`""`: all of them).
pub async fn metric(http: &reqwest::Client, metrics_url: &str, name: &str, filter: &str) -> f64 {
    let text = http
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(filter)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of `NAME=value` in what `reconctl keys derive` printed.
pub fn derived_key(derived: &str, name: &str) -> String {
    derived
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in `reconctl keys derive`"))
        .to_string()
}

/// Migrates, then registers the simulator's accounts as an operator would: each with
/// its first verifier token (and its API token, for a worker), any further token
/// through `rotate-verifier`. Returns the accounts as `/sim/accounts` lists them.
pub async fn register_sim_accounts(
    sim_url: &str,
    env: &[(&'static str, String)],
    with_api_tokens: bool,
) -> Vec<Value> {
    let accounts = crate::sim::sim_accounts(&reqwest::Client::new(), sim_url).await;
    run_ok("reconctl", &["migrate"], env);
    for account in &accounts {
        let id = account["accountId"].as_str().unwrap();
        let tokens = account["verifierTokens"].as_array().unwrap();
        let mut with_tokens = env.to_vec();
        with_tokens.push(("VERIFIER", tokens[0].as_str().unwrap().to_string()));
        let mut args = vec!["accounts", "add", id, "--verifier-token-env", "VERIFIER"];
        if with_api_tokens {
            with_tokens.push((
                "API_TOKEN",
                account["apiToken"].as_str().unwrap().to_string(),
            ));
            args.extend(["--api-token-env", "API_TOKEN"]);
        }
        run_ok("reconctl", &args, &with_tokens);
        for token in &tokens[1..] {
            with_tokens.push(("NEXT", token.as_str().unwrap().to_string()));
            run_ok(
                "reconctl",
                &[
                    "accounts",
                    "rotate-verifier",
                    id,
                    "--verifier-token-env",
                    "NEXT",
                ],
                &with_tokens,
            );
        }
    }
    accounts
}
