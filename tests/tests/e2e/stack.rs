//! The whole pipeline from the built binaries: simulator, receiver, worker, on a fresh
//! database and queue prefix; torn down on drop.

use std::time::{Duration, Instant};

use rand::Rng;
use recon_store::MasterKey;
use recon_store::testing::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::binaries::{Running, free_port, register_sim_accounts, run_ok, wait_until_healthy};
use crate::sim::{NO_RATE_LIMITS, start_sim};

/// Counts the transactions the worker has stored (no longer `pending`).
pub const RECONCILED: &str =
    "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'";

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct Stack {
    pub db: TestDatabase,
    pub env: Vec<(&'static str, String)>,
    pub prefix: String,
    pub sim: Running,
    pub sim_url: String,
    pub receiver: Running,
    pub worker: Running,
    pub worker_addr: String,
    pub api: Running,
    pub api_url: String,
    pub accounts: Vec<Value>,
    pub http: reqwest::Client,
}

pub struct StackOptions<'a> {
    pub seed: u64,
    pub transactions_per_account: u32,
    pub sim_faults: &'a str,
    /// Extra worker environment (e.g. a DATABASE_URL through a proxy).
    pub worker_env: Vec<(&'static str, String)>,
    /// Extra simulator environment (e.g. `SIM_BATCH_CLOSE_EVERY`).
    pub sim_env: Vec<(&'static str, String)>,
}

impl Stack {
    pub async fn start(options: StackOptions<'_>) -> Stack {
        let db = TestDatabase::create().await;
        let prefix = format!("e2e-{:012x}", rand::rng().random::<u64>() >> 16);
        let receiver_addr = format!("127.0.0.1:{}", free_port());
        let worker_addr = format!("127.0.0.1:{}", free_port());
        let api_addr = format!("127.0.0.1:{}", free_port());
        let webhook_url = format!("http://{receiver_addr}/webhooks/helcim/{{account_id}}");
        let (seed, per_account) = (
            options.seed.to_string(),
            options.transactions_per_account.to_string(),
        );
        let flags = [
            "--seed",
            &seed,
            "--transactions-per-account",
            &per_account,
            "--hold-deliveries",
        ];
        let mut simulator_env = vec![
            ("SIM_FAULTS", options.sim_faults.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ];
        simulator_env.extend(options.sim_env.iter().cloned());
        let sim = start_sim(
            &[&flags[..], &webhook_flags(&webhook_url), &NO_RATE_LIMITS].concat(),
            &simulator_env,
        )
        .await;
        let env = sim_env(&db, &prefix, &sim.url);
        let (sim, sim_url) = (sim.running, sim.url);
        let accounts = register_sim_accounts(&sim_url, &env, true).await;
        let receiver = start_receiver(&env, &receiver_addr).await;
        let worker = start_worker(&env, &worker_addr, &options.worker_env);
        wait_until_healthy(&format!("http://{worker_addr}/readyz")).await;
        let (api, api_url) = start_api(&env, &api_addr, &[]).await;
        Stack {
            db,
            env,
            prefix,
            sim,
            sim_url,
            receiver,
            worker,
            worker_addr,
            api,
            api_url,
            accounts,
            http: reqwest::Client::new(),
        }
    }

    pub fn restart_worker(&mut self, extra: &[(&'static str, String)]) {
        self.worker = start_worker(&self.env, &self.worker_addr, extra);
    }

    pub async fn start_deliveries(&self) {
        let started = self
            .http
            .post(format!("{}/sim/deliveries/start", self.sim_url))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202);
    }

    pub async fn sim_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn put_faults(&self, faults: Value) {
        let response = self
            .http
            .put(format!("{}/sim/faults", self.sim_url))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Waits until every simulated webhook was delivered (or given up on).
    pub async fn deliveries_finished(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.sim_json("/sim/stats").await["webhooks"]["finished"] == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the simulator did not finish delivering within {within:?}");
    }

    /// Waits until `ready` holds for the ledger.
    pub async fn ledger_until(
        &self,
        within: Duration,
        what: &str,
        ready: impl Fn(i64) -> bool,
        sql: &str,
    ) -> i64 {
        let every = Duration::from_millis(250);
        match count_reaches(&self.db.pool, within, every, sql, ready).await {
            Ok(reached) => reached,
            Err(last) => panic!("{what}: still {last} after {within:?}"),
        }
    }

    /// Nothing waits in any queue: work, retries or dead letters.
    pub fn assert_nothing_queued(&self) {
        let queues = self.reconctl(&["queues"]);
        // Only this stack's queues: `reconctl queues` also names the alerts exchange.
        let ours: Vec<&str> = queues
            .lines()
            .filter(|l| l.starts_with(&format!("{}.", self.prefix)))
            .collect();
        assert!(
            !ours.is_empty() && ours.iter().all(|l| l.trim_end().ends_with(" 0")),
            "nothing may be left queued or dead-lettered:\n{queues}"
        );
    }

    pub fn reconctl(&self, args: &[&str]) -> String {
        run_ok("reconctl", args, &self.env)
    }

    pub async fn finish(self) {
        let Stack {
            db,
            prefix,
            mut sim,
            mut receiver,
            mut worker,
            mut api,
            ..
        } = self;
        let _ = api.child.kill();
        let _ = worker.child.kill();
        let _ = receiver.child.kill();
        let _ = sim.child.kill();
        let connection =
            lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
                .await
                .unwrap();
        let topology = recon_queue::Topology::new(&prefix).with_retry_delays(vec![
            Duration::from_millis(200),
            Duration::from_millis(500),
            Duration::from_secs(1),
        ]);
        topology.delete(&connection).await.unwrap();
        db.drop_now().await;
    }
}

/// What every binary of one test needs: its own database, master key and queue prefix.
pub fn base_env(db: &TestDatabase, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "RECON_MASTER_KEY",
            MasterKey::generate().expose_secret().to_string(),
        ),
        ("AMQP_URL", AMQP_URL.to_string()),
        ("AMQP_PREFIX", prefix.to_string()),
    ]
}

/// Polls the number `sql` counts every `every` until `ready` holds for it (`Ok`, the
/// number) or `within` passed (`Err`, the last number seen; -1 when the query failed).
pub async fn count_reaches(
    pool: &sqlx::PgPool,
    within: Duration,
    every: Duration,
    sql: &str,
    ready: impl Fn(i64) -> bool,
) -> Result<i64, i64> {
    let deadline = Instant::now() + within;
    let mut last = -1;
    while Instant::now() < deadline {
        last = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(pool)
            .await
            .unwrap_or(-1);
        if ready(last) {
            return Ok(last);
        }
        tokio::time::sleep(every).await;
    }
    Err(last)
}

/// The simulator's webhook delivery flags every stack uses: deliveries to `url`,
/// unthrottled, retried quickly and long enough to outlast a restart.
pub fn webhook_flags(url: &str) -> [&str; 8] {
    [
        "--webhook-url",
        url,
        "--webhook-rate",
        "0",
        "--webhook-retry-base-ms",
        "200",
        "--webhook-max-attempts",
        "30",
    ]
}

/// `base_env` plus what binaries talking to the simulator at `sim_url` need: quick
/// queue retries and no Helcim rate limits.
pub fn sim_env(db: &TestDatabase, prefix: &str, sim_url: &str) -> Vec<(&'static str, String)> {
    let mut env = base_env(db, prefix);
    env.extend([
        ("AMQP_RETRY_DELAYS", "200ms,500ms,1s".to_string()),
        ("HELCIM_API_BASE_URL", format!("{sim_url}/v2")),
        ("HELCIM_LIMITS", "unlimited".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]);
    env
}

/// A receiver of this stack's `env` at `addr`, once it is ready.
pub async fn start_receiver(env: &[(&'static str, String)], addr: &str) -> Running {
    let mut receiver_env = env.to_vec();
    receiver_env.push(("RECEIVER_ADDR", addr.to_string()));
    let receiver = Running::start("recon-receiver", &[], &receiver_env);
    wait_until_healthy(&format!("http://{addr}/readyz")).await;
    receiver
}

/// An API of this stack's `env` at `addr` with `extra` environment, once it is ready,
/// and its base URL.
pub async fn start_api(
    env: &[(&'static str, String)],
    addr: &str,
    extra: &[(&'static str, String)],
) -> (Running, String) {
    let mut api_env = env.to_vec();
    api_env.push(("API_ADDR", addr.to_string()));
    api_env.extend(extra.iter().cloned());
    let api = Running::start("recon-api", &[], &api_env);
    let api_url = format!("http://{addr}");
    wait_until_healthy(&format!("{api_url}/readyz")).await;
    (api, api_url)
}

/// A worker of this stack's `env` at `addr`, with `extra` environment.
pub fn start_worker(
    env: &[(&'static str, String)],
    addr: &str,
    extra: &[(&'static str, String)],
) -> Running {
    let mut worker_env = env.to_vec();
    worker_env.push(("WORKER_ADDR", addr.to_string()));
    worker_env.extend(extra.iter().cloned());
    Running::start("recon-worker", &[], &worker_env)
}
