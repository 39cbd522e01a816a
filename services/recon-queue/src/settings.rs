//! The RabbitMQ settings every service shares, as command-line flags with environment
//! fallbacks. Services sharing a prefix must share the retry delays too: they are
//! queue arguments. The URL holds a password: it comes from the environment only
//! (`AMQP_URL` or `AMQP_URL_FILE`), never from a flag.

use clap::Args;
use recon_common::secrets::{self, Env};
use secrecy::{ExposeSecret, SecretString};

use crate::broker::BrokerConfig;
use crate::topology::{RetryDelays, Topology};

/// The URL when `AMQP_URL` is not set: the local broker `make run` starts.
pub const LOCAL_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Debug, Clone, Args)]
pub struct AmqpSettings {
    /// RabbitMQ URL: from `AMQP_URL` or `AMQP_URL_FILE` by [`AmqpSettings::read_secrets`]
    /// (no flag: it holds a password); the local broker until then.
    #[arg(skip = SecretString::from(LOCAL_AMQP_URL))]
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
    /// The durable topic exchange attribution alerts are published on.
    #[arg(
        long = "amqp-alerts-exchange",
        env = "AMQP_ALERTS_EXCHANGE",
        default_value = crate::topology::ALERTS_EXCHANGE
    )]
    pub alerts_exchange: String,
}

impl AmqpSettings {
    /// Reads the URL from `AMQP_URL` or `AMQP_URL_FILE` (the local broker if neither is
    /// set) and checks it, with an error that never shows its password.
    pub fn read_secrets(&mut self, env: &dyn Env) -> anyhow::Result<()> {
        if let Some(url) = secrets::read(env, "AMQP_URL")? {
            self.url = url;
        }
        crate::amqp_url::parse_amqp_url(self.url.expose_secret())?;
        Ok(())
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix)
            .with_retry_delays(self.retry_delays.0.clone())
            .with_alerts_exchange(&self.alerts_exchange)
    }

    /// A broker configuration named `connection_name` in the broker's UI.
    pub fn broker_config(&self, connection_name: &str) -> BrokerConfig {
        BrokerConfig::new(self.url.expose_secret(), self.topology(), connection_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        amqp: AmqpSettings,
    }

    #[test]
    fn the_amqp_url_is_not_a_command_line_flag() {
        let error = Cli::try_parse_from(["x", "--amqp-url", "amqp://u:p@h/%2f"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn the_amqp_url_comes_from_the_environment_and_is_checked() {
        let mut cli = Cli::parse_from(["x"]);
        assert_eq!(cli.amqp.url.expose_secret(), LOCAL_AMQP_URL);
        let env =
            |name: &str| (name == "AMQP_URL").then(|| "amqps://u:pw@rabbit:5671/prod".to_string());
        cli.amqp.read_secrets(&env).unwrap();
        assert_eq!(
            cli.amqp.url.expose_secret(),
            "amqps://u:pw@rabbit:5671/prod"
        );

        let bad = |name: &str| (name == "AMQP_URL").then(|| "guest:hunter2@rabbit/%2f".to_string());
        let error = cli.amqp.read_secrets(&bad).unwrap_err();
        assert!(
            !format!("{error:#} {error:?}").contains("hunter2"),
            "{error:#}"
        );
    }
}
