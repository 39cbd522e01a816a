//! `recon-gateway` at the edges of what a client may send: paths with dot segments
//! (which the URL parser resolves before the request goes out, so a payment must be
//! recognised by the path sent), and a body field Postgres cannot hold (which must not
//! stop evidence from being written, this request's or any later one's).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway_stack::{
    Answer, GatewayOptions, GatewayStack, fresh_key, purchase, transaction_id,
};

/// One HTTP/1.1 request written as given (no client normalises its path), and the
/// status and body of the answer.
async fn raw(gateway_url: &str, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let addr = gateway_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = head.replace('\n', "\r\n").into_bytes();
    request.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    request.extend_from_slice(b"connection: close\r\n\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text}"));
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer with a head");
    (status, answer[at + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_path_with_dot_segments_is_recognised_as_sent_and_leaves_its_evidence() {
    let s = GatewayStack::start(GatewayOptions::default()).await;
    let key = fresh_key("dots");
    let body = serde_json::to_vec(&purchase("12.34", "INV-DOTS")).unwrap();
    let head = format!(
        "POST /v2/payment/x/%2e%2e/purchase HTTP/1.1\nhost: gateway\napi-token: {}\n\
         idempotency-key: {key}\ncontent-type: application/json\n",
        s.a.api_token
    );
    let (status, answer) = raw(&s.gateway_url, &head, &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["status"], "APPROVED", "{answer}");

    s.expect_evidence(1, Duration::from_secs(20)).await;
    let evidence = s.evidence_of(&key).await;
    assert_eq!(evidence.endpoint, "payment/purchase");
    assert_eq!(evidence.invoice_number.as_deref(), Some("INV-DOTS"));
    let made = Answer {
        status,
        headers: Vec::new(),
        body: serde_json::to_vec(&answer).unwrap(),
    };
    assert_eq!(evidence.transaction_id, Some(transaction_id(&made)));

    // A path that leaves /v2/ once resolved is not forwarded anywhere.
    let head = format!(
        "GET /v2/%2e%2e/v1/anything HTTP/1.1\nhost: gateway\napi-token: {}\n",
        s.a.api_token
    );
    let (status, answer) = raw(&s.gateway_url, &head, b"").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["error"], "not_found");
    assert!(
        answer["message"].as_str().unwrap().contains(".."),
        "{answer}"
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_number_postgres_cannot_hold_holds_back_no_evidence() {
    let s = GatewayStack::start(GatewayOptions::default()).await;
    let (nul_key, next_key) = (fresh_key("nul"), fresh_key("after-nul"));
    // Valid JSON, and a valid string for Helcim; Postgres text cannot hold a NUL.
    let answered = s
        .buy(&s.a.api_token, Some(&nul_key), "5.00", "INV\u{0}NUL")
        .await;
    let next = s
        .buy(&s.a.api_token, Some(&next_key), "6.00", "INV-AFTER")
        .await;
    assert_eq!(next.status, 200);
    assert_eq!(
        s.evidence_count_settles_at(2, Duration::from_secs(20))
            .await,
        2,
        "both requests' evidence is written"
    );
    let nul = s.evidence_of(&nul_key).await;
    assert_eq!(
        nul.invoice_number, None,
        "the field is dropped, not the row"
    );
    assert_eq!(nul.status, Some(answered.status as i16));
    assert_eq!(nul.amount_minor, Some(500));
    assert_eq!(
        s.evidence_of(&next_key).await.invoice_number.as_deref(),
        Some("INV-AFTER")
    );
    assert_eq!(s.metric("gateway_evidence_rejected_total", "").await, 0.0);
    s.finish().await;
}
