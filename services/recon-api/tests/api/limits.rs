use recon_store::api_keys::Role;
use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn many_bad_keys_from_one_address_get_429_and_most_never_reach_postgres() {
    let api = Harness::start(Options {
        failures_per_minute: 5,
        ..Options::default()
    })
    .await;
    const ATTEMPTS: usize = 30;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for attempt in 0..ATTEMPTS {
        let response = api.transaction(&format!("hrk_guess-{attempt}")).await;
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("too many"),
                "{body}"
            );
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let retry_after = retry_after.expect("a 429 says when to retry");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The budget of 5, plus the attempt whose failure found the budget spent.
    let lookups = api.state.auth.lookups();
    assert!(
        lookups <= 6,
        "{lookups} database lookups for {ATTEMPTS} junk keys"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_same_junk_key_is_looked_up_once_and_then_answered_from_memory() {
    let api = Harness::start(Options::default()).await;
    for _ in 0..20 {
        assert_eq!(api.transaction("hrk_same-junk").await.status(), 401);
    }
    assert_eq!(api.state.auth.lookups(), 1);

    // A valid key is looked up every time: its revocation must apply at once.
    let key = api.key(Role::Finance, None).await;
    for _ in 0..3 {
        assert_eq!(api.transaction(&key).await.status(), 200);
    }
    assert_eq!(api.state.auth.lookups(), 4);
    api.stop().await;
}

/// A request to the transaction as if through an ingress that saw `client`.
async fn via_ingress(api: &Harness, key: &str, forwarded_for: &str) -> u16 {
    api.http
        .get(format!(
            "{}/v1/accounts/{ACCOUNT}/transactions/{TRANSACTION}",
            api.url
        ))
        .bearer_auth(key)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_ingress_one_client_sending_junk_keys_does_not_lock_out_the_others() {
    let api = Harness::start(Options {
        failures_per_minute: 3,
        behind_proxy: true,
        ..Options::default()
    })
    .await;
    let key = api.key(Role::Finance, None).await;
    // The attacker also forges an address of its own on the left: not believed.
    for attempt in 0..10 {
        let junk = format!("hrk_guess-{attempt}");
        let _ = via_ingress(&api, &junk, "198.51.100.20, 203.0.113.66").await;
    }
    assert_eq!(
        via_ingress(&api, "hrk_guess-more", "198.51.100.21, 203.0.113.66").await,
        429,
        "the attacker's own address is limited whatever it forges"
    );
    assert_eq!(
        via_ingress(&api, &key, "203.0.113.7").await,
        200,
        "another client behind the same ingress is not"
    );
    api.stop().await;
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_for_header_changes_nothing() {
    let api = Harness::start(Options {
        failures_per_minute: 3,
        ..Options::default()
    })
    .await;
    for attempt in 0..5 {
        let forged = format!("203.0.113.{attempt}");
        let _ = via_ingress(&api, &format!("hrk_guess-{attempt}"), &forged).await;
    }
    assert_eq!(
        via_ingress(&api, "hrk_guess-last", "198.51.100.99").await,
        429
    );
    api.stop().await;
}
