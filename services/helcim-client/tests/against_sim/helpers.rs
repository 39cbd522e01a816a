use std::time::Duration;

use helcim_client::{AccountLimits, ApiToken, ClientConfig, HelcimClient, RetryPolicy};
use recon_sim::activity::Account;
use recon_sim::{RunningSim, SimConfig};

/// A simulator with `config` and a client for its first account.
pub async fn sim_and_client(config: SimConfig) -> (RunningSim, HelcimClient, Account) {
    let sim = RunningSim::start(config)
        .await
        .expect("the simulator starts");
    let account = sim.state().activity.accounts[0].clone();
    let client = client_for(
        &sim,
        &account.api_token,
        AccountLimits::HELCIM,
        fast_retries(),
    );
    (sim, client, account)
}

pub fn client_for(
    sim: &RunningSim,
    token: &str,
    limits: AccountLimits,
    retry: RetryPolicy,
) -> HelcimClient {
    let config = ClientConfig::new(&sim.api_base_url(), ApiToken::new(token).unwrap())
        .unwrap()
        .with_retry(retry)
        .with_limits(limits);
    HelcimClient::new(config).unwrap()
}

/// Retries quick enough for tests, with the same shape as production's.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 6,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
    }
}

/// Helcim's limits, minus the per-minute and per-hour budgets so that reading a whole
/// simulated history does not wait for the clock.
pub fn no_budget_limits() -> AccountLimits {
    AccountLimits {
        per_minute: None,
        per_hour: None,
        ..AccountLimits::HELCIM
    }
}

pub fn unlimited_sim() -> SimConfig {
    SimConfig {
        limits: recon_sim::limits::RateLimits::UNLIMITED,
        ..SimConfig::default()
    }
}
