//! `amqps://` URLs speak TLS with the workspace's one rustls crypto provider
//! (aws-lc-rs): the connector is built (where a missing or ambiguous provider would
//! fail) and a ClientHello goes out before anything else, credentials included.

use std::time::Duration;

use recon_queue::{Broker, BrokerConfig, Topology};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn an_amqps_url_opens_with_a_tls_client_hello() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = Broker::new(BrokerConfig::new(
        format!("amqps://guest:guest@127.0.0.1:{port}/%2f"),
        Topology::new("tls-probe"),
        "recon-queue-tls-test",
    ));
    let connect = tokio::spawn(async move { broker.connect().await });

    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the broker client connects")
        .unwrap();
    let mut header = [0u8; 6];
    socket.read_exact(&mut header).await.unwrap();
    connect.abort();
    // A TLS handshake record (22) carrying a ClientHello (1), not AMQP's `AMQP\0...`.
    assert_eq!(header[0], 22, "not a TLS handshake record: {header:?}");
    assert_eq!(header[5], 1, "not a ClientHello: {header:?}");
}
