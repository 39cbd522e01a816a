//! The RabbitMQ settings every service shares, as command-line flags with environment
//! fallbacks. Services sharing a prefix must share the retry delays too: they are
//! queue arguments.

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::broker::BrokerConfig;
use crate::topology::{RetryDelays, Topology};

#[derive(Debug, Clone, Args)]
pub struct AmqpSettings {
    /// RabbitMQ URL (it holds a password: set it in the environment, not on the command line).
    #[arg(long = "amqp-url", env = "AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
          value_parser = secret, hide_env_values = true, hide_default_value = true)]
    pub url: SecretString,
    /// Prefix of the exchange and queue names.
    #[arg(
        long = "amqp-prefix",
        env = "AMQP_PREFIX",
        default_value = "helcim-recon"
    )]
    pub prefix: String,
    /// Delays of the retry queues, e.g. `5s,30s,2m,10m`.
    #[arg(
        long = "amqp-retry-delays",
        env = "AMQP_RETRY_DELAYS",
        default_value = "5s,30s,2m,10m"
    )]
    pub retry_delays: RetryDelays,
}

fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text.to_string()))
}

impl AmqpSettings {
    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix).with_retry_delays(self.retry_delays.0.clone())
    }

    /// A broker configuration named `connection_name` in the broker's UI.
    pub fn broker_config(&self, connection_name: &str) -> BrokerConfig {
        BrokerConfig::new(self.url.expose_secret(), self.topology(), connection_name)
    }
}
