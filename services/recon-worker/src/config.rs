//! Settings, from flags or (as deployed) the environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use recon_common::telemetry::LogFormat;
use secrecy::{ExposeSecret, SecretString};

/// recon-worker: fetches what webhooks announce from Helcim and records it in Postgres.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Settings {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "WORKER_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
    /// Postgres (the ledger and the accounts).
    #[arg(long, env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub database_url: SecretString,
    #[command(flatten)]
    pub amqp: recon_queue::AmqpSettings,
    /// Messages processed at once (the unacknowledged limit).
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 64)]
    pub prefetch: u16,
    /// Retries for causes of the message's own (a transaction Helcim does not show
    /// yet, an account without a token) before it is dead-lettered.
    #[arg(long, env = "WORKER_MAX_RETRIES", default_value_t = 8)]
    pub max_retries: u32,
    /// How long after the webhook was received an outage (Helcim 5xx, 429, timeouts)
    /// is given up on and the message dead-lettered, e.g. `72h`.
    #[arg(long, env = "RECON_RETRY_GIVE_UP", default_value = "72h", value_parser = recon_queue::topology::parse_duration)]
    pub retry_give_up: Duration,
    /// `/readyz` fails when a message has been held unacknowledged longer than this
    /// (a consumer that stopped settling), e.g. `10m`.
    #[arg(long, env = "WORKER_STUCK_AFTER", default_value = "10m", value_parser = recon_queue::topology::parse_duration)]
    pub stuck_after: Duration,
    /// How long an open batch's stats are reused before being fetched again.
    #[arg(long, env = "WORKER_OPEN_BATCH_REFRESH_SECS", default_value_t = 60)]
    pub open_batch_refresh_secs: u64,
    #[arg(
        long,
        env = "HELCIM_API_BASE_URL",
        default_value = "https://api.helcim.com/v2"
    )]
    pub helcim_api_base_url: String,
    /// `helcim` (5 in flight, 100/min, 3000/h per account) or `unlimited` (simulator
    /// benchmarks only).
    #[arg(long, env = "HELCIM_LIMITS", value_enum, default_value_t = Limits::Helcim)]
    pub helcim_limits: Limits,
    /// A single account configured here rather than with reconctl.
    #[arg(long, env = "HELCIM_ACCOUNT_ID", default_value = "default")]
    pub account_id: String,
    #[arg(long, env = "HELCIM_API_TOKEN", value_parser = secret, hide_env_values = true)]
    pub api_token: Option<SecretString>,
    #[arg(long, env = "HELCIM_PARTNER_TOKEN", value_parser = secret, hide_env_values = true)]
    pub partner_token: Option<SecretString>,
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Limits {
    Helcim,
    Unlimited,
}

fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text.to_string()))
}

impl Settings {
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    pub fn open_batch_refresh(&self) -> Duration {
        Duration::from_secs(self.open_batch_refresh_secs)
    }
}
