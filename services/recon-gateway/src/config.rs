//! Settings, from flags or (as deployed) the environment. Secrets (`DATABASE_URL`,
//! `HELCIM_PARTNER_TOKEN`, the keys) come from the environment or a `NAME_FILE` only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use recon_common::telemetry::LogFormat;
use recon_store::{Purpose, SecretCipher};
use secrecy::SecretString;

/// recon-gateway: a transparent proxy in front of Helcim's API that adds the partner
/// token and records Helcim's is-valid-partner-token answer as attribution evidence.
#[derive(Debug, Clone, Parser)]
#[command(version, after_help = SECRETS_HELP)]
pub struct Settings {
    /// Address to listen on (`/v2/...`; also /healthz, /readyz and /metrics unless
    /// METRICS_ADDR is set).
    #[arg(long, env = "GATEWAY_ADDR", default_value = "127.0.0.1:8083")]
    pub addr: SocketAddr,
    /// A separate address for /healthz, /readyz and /metrics.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Helcim's API, up to and including /v2 (https; http only to this machine).
    #[arg(long, env = "HELCIM_API_BASE_URL", default_value = helcim_client::client::DEFAULT_BASE_URL)]
    pub helcim_api_base_url: String,
    /// How long Helcim may take to answer before the client gets 504.
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub upstream_timeout: Duration,
    /// Largest request body forwarded; larger gets 413.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Where evidence is spooled before Postgres has it: a volume that outlives the
    /// process (and, for a lost node to lose nothing, the pod).
    #[arg(long, env = "GATEWAY_SPOOL_DIR", default_value = "gateway-spool")]
    pub spool_dir: PathBuf,
    /// How often the spool is fsynced: what a lost machine can lose.
    #[arg(long, env = "GATEWAY_SPOOL_FSYNC_INTERVAL", default_value = "50ms", value_parser = duration)]
    pub spool_fsync_interval: Duration,
    /// Size at which a spool segment is finished and a new one started.
    #[arg(long, env = "GATEWAY_SPOOL_SEGMENT_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub spool_segment_bytes: u64,
    /// Evidence records kept in memory at most while the spool cannot be written.
    #[arg(long, env = "GATEWAY_MEMORY_QUEUE", default_value_t = 50_000)]
    pub memory_queue: usize,
    /// Evidence records per Postgres transaction.
    #[arg(long, env = "GATEWAY_WRITE_BATCH", default_value_t = 500)]
    pub write_batch: usize,
    /// How often the accounts (and their partner tokens) are re-read.
    #[arg(long, env = "GATEWAY_ACCOUNT_REFRESH", default_value = "30s", value_parser = duration)]
    pub account_refresh: Duration,
    /// How long a request waits for Postgres to look up an API token not seen before.
    #[arg(long, env = "GATEWAY_LOOKUP_TIMEOUT", default_value = "250ms", value_parser = duration)]
    pub lookup_timeout: Duration,
    /// How long /readyz waits for the accounts to be read once before saying ready
    /// anyway (a Postgres outage must not keep every gateway out of service).
    #[arg(long, env = "GATEWAY_ACCOUNTS_WAIT", default_value = "30s", value_parser = duration)]
    pub accounts_wait: Duration,
    /// On SIGTERM, how long to keep writing spooled evidence after the last request.
    #[arg(long, env = "GATEWAY_DRAIN_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "GATEWAY_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// Postgres with the accounts and the evidence: `DATABASE_URL` (environment only).
    #[arg(skip = SecretString::from(""))]
    pub database_url: SecretString,
    /// The partner token added for an account that has none of its own (nor a
    /// referrer's): `HELCIM_PARTNER_TOKEN` (environment only).
    #[arg(skip)]
    pub partner_token: Option<SecretString>,
}

const SECRETS_HELP: &str = "Secrets, from the environment only (or from the file NAME_FILE names):
  DATABASE_URL              Postgres with the accounts and the evidence (required)
  HELCIM_PARTNER_TOKEN      the partner token added when the account has none
  RECON_LOOKUP_KEY          fingerprints API tokens to find their account (required)
  RECON_PARTNER_TOKEN_KEY   decrypts the accounts' partner tokens
  (or RECON_MASTER_KEY, from which both are derived; each with *_PREVIOUS while rotating)";

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write a duration such as 500ms, 30s or 2m"))
}

impl Settings {
    /// Flags and environment, then the secrets from the environment.
    pub fn load() -> anyhow::Result<Self> {
        recon_common::secrets::load(Self::read_secrets)
    }

    pub fn read_secrets(&mut self, env: &dyn recon_common::secrets::Env) -> anyhow::Result<()> {
        use recon_common::secrets::{read, required};
        self.database_url = required(
            env,
            "DATABASE_URL",
            "the gateway reads the accounts and writes evidence there; set it (or \
             DATABASE_URL_FILE), e.g. postgres://USER:PASSWORD@HOST:5432/helcim_recon?sslmode=verify-full",
        )?;
        self.partner_token = read(env, "HELCIM_PARTNER_TOKEN")?;
        Ok(())
    }
}

/// The gateway keeps the lookup keys (which decrypt nothing) and the partner-token key,
/// nothing else: API tokens are never decrypted here. Without a lookup key it cannot
/// find any account, so it refuses to start.
pub fn gateway_keys(cipher: SecretCipher) -> anyhow::Result<SecretCipher> {
    let cipher = cipher.restricted_to(&[Purpose::PartnerToken], true);
    if cipher.lookup_keys().is_empty() {
        anyhow::bail!(
            "no lookup key: set RECON_LOOKUP_KEY (from `reconctl keys derive`) or RECON_MASTER_KEY; \
             without it the gateway cannot tell which account an API token belongs to"
        );
    }
    if !cipher.holds(Purpose::PartnerToken) {
        tracing::warn!(
            "no partner-token key (RECON_PARTNER_TOKEN_KEY): accounts' own partner tokens cannot be \
             read, so HELCIM_PARTNER_TOKEN (if set) is added for every account"
        );
    }
    Ok(cipher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_are_not_command_line_flags() {
        recon_common::secrets::assert_not_flags::<Settings>(
            "recon-gateway",
            &["--database-url", "--partner-token"],
        );
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_shown() {
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u:pw@db/helcim_recon".to_string()),
            "HELCIM_PARTNER_TOKEN" => Some("partner-s3cret".to_string()),
            _ => None,
        };
        let mut settings = Settings::parse_from(["recon-gateway"]);
        settings.read_secrets(&env).unwrap();
        assert_eq!(
            settings.partner_token.as_ref().unwrap().expose_secret(),
            "partner-s3cret"
        );
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("pw@") && !shown.contains("partner-s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn without_a_database_url_the_gateway_says_what_to_set() {
        let mut settings = Settings::parse_from(["recon-gateway"]);
        let error = settings.read_secrets(&|_: &str| None).unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let settings =
            Settings::try_parse_from(["recon-gateway", "--upstream-timeout", "1500ms"]).unwrap();
        assert_eq!(settings.upstream_timeout, Duration::from_millis(1500));
        let error =
            Settings::try_parse_from(["recon-gateway", "--upstream-timeout", "soon"]).unwrap_err();
        assert!(error.to_string().contains("500ms"), "{error}");
    }

    #[test]
    fn the_gateway_keeps_the_lookup_and_partner_token_keys_only() {
        let master = recon_store::MasterKey::generate();
        let env =
            |name: &str| (name == "RECON_MASTER_KEY").then(|| master.expose_secret().to_string());
        let cipher = gateway_keys(SecretCipher::from_lookup(&env).unwrap()).unwrap();
        assert!(cipher.holds(Purpose::PartnerToken));
        assert!(!cipher.holds(Purpose::ApiToken));
        assert!(!cipher.holds(Purpose::Verifier));
        assert_eq!(cipher.lookup_keys().len(), 1);
    }
}
