//! The client speaks TLS to an `https` base URL with the workspace's one rustls crypto
//! provider (aws-lc-rs). Building the client is where a missing or ambiguous provider
//! would panic; the ClientHello on the wire shows the handshake really starts.

use std::time::Duration;

use helcim_client::{ApiToken, ClientConfig, HelcimClient};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn a_client_for_an_https_base_url_opens_with_a_tls_client_hello() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = ClientConfig::new(
        &format!("https://127.0.0.1:{port}/v2"),
        ApiToken::new("tls-probe-token").unwrap(),
    )
    .unwrap();
    let client = HelcimClient::new(config).expect("the client builds with the crypto provider");
    let call = tokio::spawn(async move { client.connection_test().await });

    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the client connects")
        .unwrap();
    let mut header = [0u8; 6];
    socket.read_exact(&mut header).await.unwrap();
    call.abort();
    // A TLS record of type handshake (22) whose first message is a ClientHello (1): the
    // token is never sent before the handshake.
    assert_eq!(header[0], 22, "not a TLS handshake record: {header:?}");
    assert_eq!(header[5], 1, "not a ClientHello: {header:?}");
}
