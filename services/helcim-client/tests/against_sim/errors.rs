use helcim_client::{AccountLimits, CardBatchId, HelcimError, RetryPolicy, TransactionId};
use recon_sim::SimConfig;

use crate::helpers::*;

#[tokio::test]
async fn the_connection_test_passes_with_a_good_token() {
    let (sim, client, _) = sim_and_client(SimConfig::default()).await;
    client.connection_test().await.unwrap();
    sim.stop().await;
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_not_retried() {
    let (sim, _, _) = sim_and_client(SimConfig::default()).await;
    let client = client_for(
        &sim,
        "not-a-real-token",
        AccountLimits::HELCIM,
        fast_retries(),
    );
    let err = client.connection_test().await.unwrap_err();
    assert!(matches!(err, HelcimError::Unauthorized(_)), "{err}");
    assert!(!err.is_transient());
    assert_eq!(
        sim.state().api_stats().by_status.get(&401),
        Some(&1),
        "no retry of a 401"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_token_without_permission_is_forbidden() {
    let (sim, _, account) = sim_and_client(SimConfig::default()).await;
    let client = client_for(
        &sim,
        &account.no_access_token,
        AccountLimits::HELCIM,
        fast_retries(),
    );
    let err = client.card_transaction(TransactionId(1)).await.unwrap_err();
    assert!(
        matches!(err, HelcimError::Forbidden { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("No access permission"));
    sim.stop().await;
}

#[tokio::test]
async fn missing_objects_are_not_found_with_what_was_asked() {
    let (sim, client, account) = sim_and_client(SimConfig::default()).await;
    let err = client.card_transaction(TransactionId(1)).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("card transaction 1"), "{err}");

    let err = client.card_batch(CardBatchId(1)).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(
        err.to_string()
            .contains("cardBatchId: Card Batch not found"),
        "{err}"
    );

    // Another account's transaction is not this account's to see.
    let other = sim
        .state()
        .activity
        .transactions
        .iter()
        .find(|t| t.account_id != account.account_id)
        .unwrap();
    let err = client
        .card_transaction(TransactionId(other.transaction_id))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    sim.stop().await;
}

#[tokio::test]
async fn a_hidden_transaction_is_not_found_until_revealed() {
    let (sim, client, account) = sim_and_client(SimConfig::default()).await;
    let id = sim
        .state()
        .activity
        .transactions
        .iter()
        .find(|t| t.account_id == account.account_id)
        .unwrap()
        .transaction_id;
    sim.state().update_faults(|f| {
        f.api.hidden_transaction_ids.insert(id);
    });
    assert!(
        client
            .card_transaction(TransactionId(id))
            .await
            .unwrap_err()
            .is_not_found()
    );
    sim.state().update_faults(|f| {
        f.api.hidden_transaction_ids.remove(&id);
    });
    assert_eq!(
        client
            .card_transaction(TransactionId(id))
            .await
            .unwrap()
            .value
            .id,
        TransactionId(id)
    );
    sim.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_until_they_pass() {
    let (sim, client, _) = sim_and_client(SimConfig::default()).await;
    sim.state().update_faults(|f| f.api.fail_next = 3);
    client.connection_test().await.unwrap();
    let stats = sim.state().api_stats();
    assert_eq!(stats.by_status.get(&503), Some(&3));
    assert_eq!(stats.by_status.get(&200), Some(&1));
    sim.stop().await;
}

#[tokio::test]
async fn lasting_server_errors_end_as_a_transient_error_with_the_attempt_count() {
    let (sim, client, _) = sim_and_client(SimConfig::default()).await;
    sim.state().update_faults(|f| {
        f.api.fail_next = 100;
        f.api.error_status = 502;
    });
    let err = client.connection_test().await.unwrap_err();
    match &err {
        HelcimError::Server {
            status: 502,
            attempts,
            ..
        } => {
            assert_eq!(*attempts, fast_retries().max_retries + 1)
        }
        other => panic!("expected a 502 server error, got {other}"),
    }
    assert!(err.is_transient());
    assert!(
        err.to_string().contains("502 Bad Gateway"),
        "the HTML body is quoted: {err}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn an_unreachable_api_is_a_transient_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let config = helcim_client::ClientConfig::new(
        &format!("http://{closed}/v2"),
        helcim_client::ApiToken::new("t0k3n").unwrap(),
    )
    .unwrap()
    .with_retry(RetryPolicy {
        max_retries: 1,
        ..fast_retries()
    });
    let client = helcim_client::HelcimClient::new(config).unwrap();
    let err = client.connection_test().await.unwrap_err();
    assert!(
        matches!(err, HelcimError::Transport { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_unreadable_answer_carries_its_exact_body_for_storage_but_never_prints_it() {
    let (sim, client, account) = sim_and_client(SimConfig::default()).await;
    let tx = sim
        .state()
        .activity
        .transactions
        .iter()
        .find(|t| t.account_id == account.account_id)
        .unwrap()
        .clone();
    let batch_id = tx.card_batch_id;
    sim.state().update_faults(|f| {
        f.api.unreadable_transaction_ids.insert(tx.transaction_id);
        f.api.unreadable_batch_ids.insert(batch_id);
    });
    let before = chrono::Utc::now();

    // Not JSON at all: the cut-off body comes back byte for byte, not retried.
    let err = client
        .card_transaction(TransactionId(tx.transaction_id))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let answer = err.unreadable_answer().expect("the body is carried");
    let body = String::from_utf8(answer.body.clone()).unwrap();
    assert!(
        body.starts_with(&format!("{{\"transactionId\":{}", tx.transaction_id)),
        "{body}"
    );
    assert!(answer.json().is_none());
    assert!(answer.sent_at >= before);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("not JSON"), "{shown}");
    assert!(
        !shown.contains(&body),
        "the body stays out of messages: {shown}"
    );
    assert!(!shown.contains(&account.api_token), "{shown}");

    // JSON with a field that does not read: the reason names the field.
    let err = client.card_batch(CardBatchId(batch_id)).await.unwrap_err();
    let answer = err.unreadable_answer().expect("the body is carried");
    assert_eq!(answer.json().unwrap()["dateClosed"], "sometime yesterday");
    assert!(err.to_string().contains("dateClosed"), "{err}");
    // The reason may quote the one field's value; the rest of the body stays out.
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("batchNumber"), "{shown}");
    assert_eq!(
        sim.state().api_stats().requests,
        2,
        "neither answer was retried"
    );
    sim.stop().await;
}
