//! Settings, from flags or (as deployed) the environment. Secrets come from the
//! environment (or a `NAME_FILE`) only, never from a flag: see [`Settings::load`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use recon_common::telemetry::LogFormat;
use secrecy::{ExposeSecret, SecretString};

/// recon-worker: fetches what webhooks announce from Helcim and records it in Postgres.
#[derive(Debug, Clone, Parser)]
#[command(version, after_help = SECRETS_HELP)]
pub struct Settings {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "WORKER_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
    /// Postgres (the ledger and the accounts): `DATABASE_URL` (environment only).
    #[arg(skip = SecretString::from(""))]
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
    /// Register each merchant a `connectedAccount` webhook announces as an account of
    /// this deployment (`false`: only keep its token in `connected_accounts`).
    #[arg(long, env = "RECON_REGISTER_CONNECTED_ACCOUNTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub register_connected_accounts: bool,
    /// A single account configured here rather than with reconctl.
    #[arg(long, env = "HELCIM_ACCOUNT_ID", default_value = "default")]
    pub account_id: String,
    /// The single account's token: `HELCIM_API_TOKEN` (environment only).
    #[arg(skip)]
    pub api_token: Option<SecretString>,
    /// The single account's partner token: `HELCIM_PARTNER_TOKEN` (environment only).
    #[arg(skip)]
    pub partner_token: Option<SecretString>,
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub attribution: crate::attribution::settings::AttributionSettings,
    #[command(flatten)]
    pub sweep: crate::sweep::SweepSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Limits {
    Helcim,
    Unlimited,
}

const SECRETS_HELP: &str = "Secrets, from the environment only (or from the file NAME_FILE names):
  DATABASE_URL          Postgres, required (postgres://...?sslmode=verify-full)
  HELCIM_API_TOKEN      a single account's API token (accounts otherwise come from Postgres)
  HELCIM_PARTNER_TOKEN  that account's partner token, if any
  AMQP_URL              RabbitMQ (amqps://...; default: the local broker)";

impl Settings {
    /// Flags and environment, then the secrets from the environment.
    pub fn load() -> anyhow::Result<Self> {
        recon_common::secrets::load(Self::read_secrets)
    }

    /// Reads the secrets from `env` (`NAME` or `NAME_FILE` each); DATABASE_URL is required.
    pub fn read_secrets(&mut self, env: &dyn recon_common::secrets::Env) -> anyhow::Result<()> {
        use recon_common::secrets::{LEDGER_DATABASE_URL, read, required};
        self.database_url = required(env, "DATABASE_URL", LEDGER_DATABASE_URL)?;
        self.api_token = read(env, "HELCIM_API_TOKEN")?;
        self.partner_token = read(env, "HELCIM_PARTNER_TOKEN")?;
        self.amqp.read_secrets(env)
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    pub fn open_batch_refresh(&self) -> Duration {
        Duration::from_secs(self.open_batch_refresh_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_accounts_are_registered_unless_switched_off() {
        assert!(Settings::parse_from(["recon-worker"]).register_connected_accounts);
        let off =
            Settings::try_parse_from(["recon-worker", "--register-connected-accounts", "false"])
                .unwrap();
        assert!(!off.register_connected_accounts);
    }

    #[test]
    fn secrets_are_not_command_line_flags() {
        recon_common::secrets::assert_not_flags::<Settings>(
            "recon-worker",
            &[
                "--database-url",
                "--api-token",
                "--partner-token",
                "--amqp-url",
            ],
        );
    }

    #[test]
    fn secrets_come_from_the_environment_and_database_url_is_required() {
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u:pw@db/helcim_recon".to_string()),
            "HELCIM_API_TOKEN" => Some("api-t0ken".to_string()),
            _ => None,
        };
        let mut settings = Settings::parse_from(["recon-worker"]);
        settings.read_secrets(&env).unwrap();
        assert_eq!(settings.database_url(), "postgres://u:pw@db/helcim_recon");
        assert_eq!(
            settings.api_token.as_ref().unwrap().expose_secret(),
            "api-t0ken"
        );
        assert!(settings.partner_token.is_none());

        let error = settings.read_secrets(&|_: &str| None).unwrap_err();
        assert!(
            error.to_string().contains("DATABASE_URL is not set"),
            "{error}"
        );
    }
}
