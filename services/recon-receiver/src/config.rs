//! Settings, from flags or (as deployed) the environment. Secrets are `SecretString`s,
//! so printing the settings never shows them, and come from the environment (or a
//! `NAME_FILE`) only, never from a flag: see [`Settings::load`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use recon_common::telemetry::LogFormat;
use secrecy::{ExposeSecret, SecretString};

use recon_store::intake::IntakePublicKey;
use recon_store::{Purpose, SecretCipher};

use crate::accounts::{AccountSource, DatabaseAccounts, StaticAccounts};

/// recon-receiver: verifies Helcim webhooks and queues them on RabbitMQ.
#[derive(Debug, Clone, Parser)]
#[command(version, after_help = SECRETS_HELP)]
pub struct Settings {
    /// Address to listen on (webhooks; also /healthz, /readyz and /metrics unless
    /// METRICS_ADDR is set).
    #[arg(long, env = "RECEIVER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// A separate address for /healthz, /readyz and /metrics; when set, RECEIVER_ADDR
    /// serves only /webhooks/helcim/{account_id}, so the ingress exposes nothing else.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// The intake public key (base64, from `reconctl keys derive`): secrets found in a
    /// webhook body are sealed with it before queueing. Not a secret. Derived from
    /// RECON_MASTER_KEY when unset.
    #[arg(long, env = "RECON_INTAKE_PUBLIC_KEY")]
    pub intake_public_key: Option<String>,
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
    /// while rotating: `HELCIM_WEBHOOK_VERIFIER_TOKEN` (environment only).
    #[arg(skip)]
    pub verifier_token: Option<SecretString>,
    /// Postgres with the accounts (`reconctl accounts add`); needs RECON_VERIFIER_KEY
    /// (or RECON_MASTER_KEY): `DATABASE_URL` (environment only). No other purpose key is
    /// kept by the receiver.
    #[arg(skip)]
    pub database_url: Option<SecretString>,
    /// Largest body accepted; larger gets 413.
    #[arg(long, env = "RECEIVER_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// How long a request may take to send its body; slower gets 408, so a client
    /// trickling bytes cannot hold a handler (and delay a shutdown's drain).
    #[arg(long, env = "RECEIVER_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
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

const SECRETS_HELP: &str = "Secrets, from the environment only (or from the file NAME_FILE names):
  DATABASE_URL                    Postgres with the accounts (postgres://...?sslmode=verify-full)
  HELCIM_WEBHOOK_VERIFIER_TOKEN   a single account's verifier token(s), instead of DATABASE_URL
  AMQP_URL                        RabbitMQ (amqps://...; default: the local broker)";

impl Settings {
    /// Flags and environment, then the secrets from the environment.
    pub fn load() -> anyhow::Result<Self> {
        recon_common::secrets::load(Self::read_secrets)
    }

    /// Reads the secrets from `env` (`NAME` or `NAME_FILE` each).
    pub fn read_secrets(&mut self, env: &dyn recon_common::secrets::Env) -> anyhow::Result<()> {
        use recon_common::secrets::read;
        self.verifier_token = read(env, "HELCIM_WEBHOOK_VERIFIER_TOKEN")?;
        self.database_url = read(env, "DATABASE_URL")?;
        self.amqp.read_secrets(env)
    }

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
            let cipher =
                std::sync::Arc::new(verifier_keys_only(recon_store::SecretCipher::from_env()?)?);
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

    /// The key secrets in bodies are sealed with: the configured public key, else the
    /// one derived from RECON_MASTER_KEY, else none (such bodies then get 503).
    pub fn intake_key(&self) -> anyhow::Result<Option<IntakePublicKey>> {
        match &self.intake_public_key {
            Some(text) if !text.trim().is_empty() => Ok(Some(IntakePublicKey::from_base64(text)?)),
            _ => IntakePublicKey::from_env(),
        }
    }
}

/// The internet-facing receiver keeps the verifier key and nothing else: the API- and
/// partner-token keys are dropped even when RECON_MASTER_KEY gave them (the master key
/// itself is kept only to read version-1 verifier tokens until they are re-encrypted).
pub fn verifier_keys_only(cipher: SecretCipher) -> anyhow::Result<SecretCipher> {
    let cipher = cipher.restricted_to(&[Purpose::Verifier], true);
    if !cipher.holds(Purpose::Verifier) {
        anyhow::bail!(
            "DATABASE_URL is set but no verifier key is: set RECON_VERIFIER_KEY (from `reconctl keys derive`)"
        );
    }
    Ok(cipher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_command_line_flags() {
        recon_common::secrets::assert_not_flags::<Settings>(
            "recon-receiver",
            &["--verifier-token", "--database-url", "--amqp-url"],
        );
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u:pw@db/helcim_recon".to_string()),
            "HELCIM_WEBHOOK_VERIFIER_TOKEN" => Some("dG9rZW4=".to_string()),
            "AMQP_URL" => Some("amqps://u:pw@rabbit:5671/prod".to_string()),
            _ => None,
        };
        let mut settings = Settings::parse_from(["recon-receiver"]);
        settings.read_secrets(&env).unwrap();
        let exposed = |s: &Option<SecretString>| s.as_ref().unwrap().expose_secret().to_string();
        assert_eq!(
            exposed(&settings.database_url),
            "postgres://u:pw@db/helcim_recon"
        );
        assert_eq!(exposed(&settings.verifier_token), "dG9rZW4=");
        assert_eq!(
            settings.amqp.url.expose_secret(),
            "amqps://u:pw@rabbit:5671/prod"
        );
        assert!(!format!("{settings:?}").contains("pw@"));
    }
}
