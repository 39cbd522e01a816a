//! The API token never leaves over plain http or through a redirect, and a server's
//! `Retry-After` neither stalls a call nor buys it extra attempts. Against small real
//! HTTP servers on 127.0.0.1 that answer what each test needs and record what arrives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helcim_client::{ApiToken, ClientConfig, HelcimClient, HelcimError, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "tok-must-not-travel-0123456789";

/// A server answering every request with `response`; returns its address and the
/// request heads it received.
async fn server(response: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0_u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).to_lowercase());
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (addr, seen)
}

fn client(base: &str, retry: RetryPolicy, cap: Duration) -> HelcimClient {
    let config = ClientConfig::new(base, ApiToken::new(TOKEN).unwrap())
        .unwrap()
        .with_retry(retry)
        .with_max_retry_after(cap);
    HelcimClient::new(config).unwrap()
}

fn quick(max_retries: usize) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_never_receives_the_api_token() {
    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
              connection: close\r\n\r\n{}";
    let (elsewhere, elsewhere_saw) = server(ok.to_string()).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{elsewhere}/v2/connection-test?x=1\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let (helcim, helcim_saw) = server(redirect).await;
    let client = client(
        &format!("http://{helcim}/v2"),
        quick(3),
        Duration::from_secs(1),
    );

    let error = client.connection_test().await.unwrap_err();

    assert!(
        matches!(error, HelcimError::Redirected { status: 302, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("redirect") && message.contains("HELCIM_API_BASE_URL"));
    assert!(
        !message.contains("x=1") && !message.contains(TOKEN),
        "{message}"
    );
    assert!(
        !error.is_transient(),
        "a redirect is configuration, not an outage"
    );
    assert_eq!(
        helcim_saw.lock().unwrap().len(),
        1,
        "asked once, not retried"
    );
    assert!(
        elsewhere_saw.lock().unwrap().is_empty(),
        "the redirect target got a request: {:?}",
        elsewhere_saw.lock().unwrap()
    );
}

#[tokio::test]
async fn plain_http_to_a_host_that_is_not_this_machine_is_refused_with_a_clear_error() {
    let error = ClientConfig::new("http://api.helcim.com/v2", ApiToken::new(TOKEN).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("plain http") && error.contains("Use https"),
        "{error}"
    );
    assert!(!error.contains(TOKEN));
    // The worker checks it at startup with the same rule.
    assert!(ClientConfig::check_base_url("http://10.1.2.3:8070/v2").is_err());
    assert!(ClientConfig::check_base_url("http://127.0.0.1:8070/v2").is_ok());
}

#[tokio::test]
async fn a_huge_retry_after_waits_no_longer_than_the_cap_and_counts_as_an_attempt() {
    let body = r#"{"errors":"Too many"}"#;
    let busy = format!(
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 100000\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (helcim, saw) = server(busy).await;
    let client = client(
        &format!("http://{helcim}/v2"),
        quick(2),
        Duration::from_millis(300),
    );

    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), client.connection_test())
        .await
        .expect("a Retry-After of 100000 s must not stall the call");
    let took = started.elapsed();

    let error = outcome.unwrap_err();
    assert!(
        matches!(error, HelcimError::RateLimited { attempts: 3, .. }),
        "{error:?}"
    );
    assert_eq!(
        saw.lock().unwrap().len(),
        3,
        "1 attempt + 2 retries, no more"
    );
    // Two waits, each capped at 300 ms.
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
