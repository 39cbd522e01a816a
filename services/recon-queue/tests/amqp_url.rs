//! A broker given a malformed AMQP_URL says so without its password: lapin's own error
//! (which the broker logs and returns) quotes the whole URL.

use recon_queue::{Broker, BrokerConfig, Topology};

#[tokio::test]
async fn a_broker_with_a_malformed_url_reports_it_without_the_password() {
    let broker = Broker::new(BrokerConfig::new(
        "guest:hunter2-Pa55word@rabbit.internal/%2f",
        Topology::new("malformed-url"),
        "recon-queue-test",
    ));
    let error = broker
        .connect()
        .await
        .expect_err("a malformed URL cannot connect");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("AMQP_URL"),
        "the error names the variable: {shown}"
    );
}
