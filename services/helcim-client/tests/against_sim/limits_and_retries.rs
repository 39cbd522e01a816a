use std::time::Duration;

use helcim_client::{AccountLimits, HelcimError, RetryPolicy, TransactionQuery};
use recon_sim::SimConfig;
use recon_sim::faults::{ApiFaults, Faults};
use recon_sim::limits::RateLimits;

use crate::helpers::*;

#[tokio::test]
async fn the_remaining_budget_headers_are_read() {
    let (sim, client, _) = sim_and_client(SimConfig::default()).await;
    client.connection_test().await.unwrap();
    client.connection_test().await.unwrap();
    let remaining = client.limiter().remaining();
    // Two of 100 spent this minute (unless the minute turned between the calls).
    assert!(matches!(remaining.minute, Some(98 | 99)), "{remaining:?}");
    assert!(matches!(remaining.hour, Some(2998 | 2999)), "{remaining:?}");
    sim.stop().await;
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_call_succeeds() {
    let (sim, _, account) = sim_and_client(SimConfig::default()).await;
    sim.state()
        .limiter
        .exhaust(&account.account_id, Duration::from_millis(500));
    let retry = RetryPolicy {
        max_retries: 10,
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        ..fast_retries()
    };
    let client = client_for(
        &sim,
        &account.api_token,
        AccountLimits {
            exhausted_pause: Duration::from_millis(100),
            ..AccountLimits::HELCIM
        },
        retry,
    );
    client.connection_test().await.unwrap();
    let stats = sim.state().api_stats();
    assert!(
        stats.by_status.get(&429).copied().unwrap_or(0) >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.by_status.get(&200), Some(&1));
    sim.stop().await;
}

#[tokio::test]
async fn a_budget_that_stays_spent_ends_as_rate_limited() {
    let (sim, _, account) = sim_and_client(SimConfig::default()).await;
    sim.state()
        .limiter
        .exhaust(&account.account_id, Duration::from_secs(60));
    let retry = RetryPolicy {
        max_retries: 2,
        ..fast_retries()
    };
    let limits = AccountLimits {
        exhausted_pause: Duration::from_millis(10),
        ..AccountLimits::HELCIM
    };
    let client = client_for(&sim, &account.api_token, limits, retry);
    let err = client.connection_test().await.unwrap_err();
    assert!(
        matches!(err, HelcimError::RateLimited { attempts: 3, .. }),
        "{err}"
    );
    assert!(err.is_transient());
    sim.stop().await;
}

#[tokio::test]
async fn the_client_never_has_more_than_five_requests_in_flight() {
    // Slow answers keep requests in flight; the simulator refuses a sixth with 429.
    let config = SimConfig {
        limits: RateLimits {
            in_flight: Some(5),
            per_minute: None,
            per_hour: None,
        },
        faults: Faults {
            api: ApiFaults {
                slow_rate: 1.0,
                slow_ms: 50,
                ..ApiFaults::default()
            },
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let (sim, _, account) = sim_and_client(config).await;
    let client = client_for(
        &sim,
        &account.api_token,
        no_budget_limits(),
        RetryPolicy::none(),
    );
    let calls = (0..30).map(|_| client.connection_test());
    let results = futures::future::join_all(calls).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let stats = sim.state().api_stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status.get(&200), Some(&30));
    sim.stop().await;
}

#[tokio::test]
async fn the_client_spreads_requests_to_stay_within_100_a_minute() {
    // A burst of 10, then one every 0.67 s: 13 calls take at least 3 intervals, and the
    // simulator (100 a minute, fixed windows) never answers 429.
    let config = SimConfig {
        limits: RateLimits {
            in_flight: Some(5),
            per_minute: Some(100),
            per_hour: None,
        },
        ..SimConfig::default()
    };
    let (sim, _, account) = sim_and_client(config).await;
    let client = client_for(
        &sim,
        &account.api_token,
        AccountLimits::HELCIM,
        RetryPolicy::none(),
    );
    let started = std::time::Instant::now();
    let calls = (0..13).map(|_| client.connection_test());
    assert!(
        futures::future::join_all(calls)
            .await
            .iter()
            .all(Result::is_ok)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.state().api_stats().by_status.get(&429), None);
    sim.stop().await;
}

#[tokio::test]
async fn paging_survives_flaky_pages() {
    let config = SimConfig {
        limits: RateLimits::UNLIMITED,
        faults: Faults {
            api: ApiFaults {
                error_rate: 0.3,
                ..ApiFaults::default()
            },
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let (sim, _, account) = sim_and_client(config).await;
    let retry = RetryPolicy {
        max_retries: 12,
        ..fast_retries()
    };
    let client = client_for(&sim, &account.api_token, AccountLimits::unlimited(), retry);
    let listing = client
        .card_transactions(&TransactionQuery::default().with_limit(25))
        .await
        .unwrap();
    let expected = sim
        .state()
        .activity
        .transactions
        .iter()
        .filter(|t| t.account_id == account.account_id)
        .count();
    assert_eq!(listing.items.len(), expected);
    assert!(
        sim.state()
            .api_stats()
            .by_status
            .get(&503)
            .copied()
            .unwrap_or(0)
            > 0
    );
    sim.stop().await;
}
