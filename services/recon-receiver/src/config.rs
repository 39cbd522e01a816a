//! Settings, from flags or (as deployed) the environment. Secrets are `SecretString`s,
//! so printing the settings never shows them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use recon_common::telemetry::LogFormat;
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::{AccountSource, DatabaseAccounts, StaticAccounts};

/// recon-receiver: verifies Helcim webhooks and queues them on RabbitMQ.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "RECEIVER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub amqp: recon_queue::AmqpSettings,
    /// AMQP channels publishing in parallel.
    #[arg(long, env = "AMQP_CHANNELS", default_value_t = 4)]
    pub amqp_channels: usize,
    /// How long to wait for RabbitMQ to confirm one message before answering 503.
    #[arg(long, env = "AMQP_CONFIRM_TIMEOUT_MS", default_value_t = 5000)]
    pub amqp_confirm_timeout_ms: u64,
    /// The single account's id (its URL is /webhooks/helcim/{id}).
    #[arg(long, env = "HELCIM_ACCOUNT_ID", default_value = "default")]
    pub account_id: String,
    /// The single account's verifier token(s), base64, space- or comma-separated
    /// while rotating.
    #[arg(long, env = "HELCIM_WEBHOOK_VERIFIER_TOKEN", value_parser = secret, hide_env_values = true)]
    pub verifier_token: Option<SecretString>,
    /// Postgres with the accounts (`reconctl accounts add`); needs RECON_MASTER_KEY.
    #[arg(long, env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Largest body accepted; larger gets 413.
    #[arg(long, env = "RECEIVER_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// How often accounts and tokens are re-read.
    #[arg(long, env = "RECEIVER_ACCOUNT_REFRESH_SECS", default_value_t = 30)]
    pub account_refresh_secs: u64,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "RECEIVER_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text.to_string()))
}

impl Settings {
    /// Settings for tests: loopback port 0, local RabbitMQ, the given prefix.
    pub fn for_tests(amqp_prefix: &str) -> Self {
        let mut settings = Settings::parse_from(["recon-receiver"]);
        settings.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.amqp.prefix = amqp_prefix.to_string();
        settings.workers = 1;
        settings
    }

    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.amqp_confirm_timeout_ms)
    }

    /// Where accounts come from, per these settings.
    pub async fn account_sources(&self) -> anyhow::Result<Vec<Box<dyn AccountSource>>> {
        let mut sources: Vec<Box<dyn AccountSource>> = Vec::new();
        if let Some(url) = &self.database_url {
            let cipher = std::sync::Arc::new(recon_store::SecretCipher::from_env()?);
            let pool = recon_store::database::connect(url.expose_secret()).await?;
            sources.push(Box::new(DatabaseAccounts(recon_store::AccountStore::new(
                pool, cipher,
            ))));
        }
        if let Some(tokens) = &self.verifier_token {
            let single = StaticAccounts::single(&self.account_id, tokens.expose_secret())
                .map_err(|e| anyhow::anyhow!("HELCIM_WEBHOOK_VERIFIER_TOKEN: {e}"))?;
            sources.push(Box::new(single));
        }
        if sources.is_empty() {
            anyhow::bail!(
                "no accounts to receive for: set DATABASE_URL (accounts added with `reconctl accounts \
                 add`), or HELCIM_WEBHOOK_VERIFIER_TOKEN (and HELCIM_ACCOUNT_ID) for a single account"
            );
        }
        Ok(sources)
    }
}
