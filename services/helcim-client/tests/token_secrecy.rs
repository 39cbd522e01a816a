//! The API token can move money: it must never show in an error, a `Debug` print or a
//! log line, whatever fails.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helcim_client::{
    AccountLimits, ApiToken, ClientConfig, HelcimClient, RetryPolicy, TransactionId,
};
use recon_sim::{RunningSim, SimConfig};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_never_appears_in_errors_debug_output_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = RunningSim::start(SimConfig::default()).await.unwrap();
    let account = sim.state().activity.accounts[0].clone();
    let mut printed = Vec::new();
    for token in [
        account.api_token.as_str(),
        account.no_access_token.as_str(),
        "Wr0ngT0kenWr0ngT0ken",
    ] {
        let config = ClientConfig::new(&sim.api_base_url(), ApiToken::new(token).unwrap())
            .unwrap()
            .with_retry(retry())
            .with_limits(AccountLimits::HELCIM);
        printed.push(format!("{config:?}"));
        let client = HelcimClient::new(config).unwrap();
        printed.push(format!("{client:?}"));
        // Successes, 401, 403, 404, and retried 503s all pass through logging.
        sim.state().update_faults(|f| f.api.fail_next = 2);
        for result in [
            client.connection_test().await.map(|_| ()),
            client.card_transaction(TransactionId(1)).await.map(|_| ()),
        ] {
            if let Err(error) = result {
                printed.push(format!("{error}"));
                printed.push(format!("{error:?}"));
            }
        }
    }
    sim.stop().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying"),
        "the retries were logged, so logs were captured"
    );
    assert!(printed.iter().any(|p| p.contains("Unauthorized")));
    for secret in [
        &account.api_token,
        &account.no_access_token,
        &"Wr0ngT0kenWr0ngT0ken".to_string(),
    ] {
        assert!(!logs.contains(secret.as_str()), "a token reached the logs");
        for text in &printed {
            assert!(!text.contains(secret.as_str()), "a token reached: {text}");
        }
    }
}

#[test]
fn a_bad_token_is_refused_without_echoing_it() {
    for bad in ["", "   ", "has space inside", "naïve"] {
        let err = ApiToken::new(bad).unwrap_err().to_string();
        if !bad.trim().is_empty() {
            assert!(!err.contains(bad), "{err}");
        }
        assert!(err.contains("token"), "{err}");
    }
    assert_eq!(
        format!("{:?}", ApiToken::new("s3cr3t").unwrap()),
        "ApiToken(<redacted>)"
    );
}
