use std::time::{Duration, Instant};

use recon_store::api_keys::Role;

use crate::harness::*;

#[tokio::test]
async fn readyz_answers_while_every_request_connection_is_taken() {
    let api = Harness::start(Options::default()).await;
    let size = api.state.pool.options().get_max_connections();
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(api.state.pool.acquire().await.unwrap());
    }
    let started = Instant::now();
    let ready = api.get("/readyz", None).await;
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(held);
    api.stop().await;
}

#[tokio::test]
async fn with_metrics_addr_the_api_port_serves_only_v1_and_the_other_the_rest() {
    let api = Harness::start(Options {
        metrics_addr: true,
        ..Options::default()
    })
    .await;
    let ops = api.ops_url.clone().expect("a second listener");
    for path in ["/metrics", "/readyz", "/healthz"] {
        assert_eq!(
            api.get(path, None).await.status(),
            404,
            "{path} on API_ADDR"
        );
        let there = api.http.get(format!("{ops}{path}")).send().await.unwrap();
        assert_eq!(there.status(), 200, "{path} on METRICS_ADDR");
    }
    let key = api.key(Role::Finance, None).await;
    assert_eq!(api.transaction(&key).await.status(), 200);
    let v1_on_ops = api
        .http
        .get(format!(
            "{ops}/v1/accounts/{ACCOUNT}/transactions/{TRANSACTION}"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(v1_on_ops.status(), 404);
    let metrics = api
        .http
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("recon_api_key_lookups_total"), "{metrics}");
    api.stop().await;
}
