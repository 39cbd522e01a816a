//! `recon-sim`: serves a simulated Helcim API and delivers signed webhooks. See
//! `recon-sim --help` and docs/simulator.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Parser;
use recon_common::telemetry::{self, LogFormat};
use recon_sim::clock::BatchClosing;
use recon_sim::faults::Faults;
use recon_sim::limits::RateLimits;
use recon_sim::settings::{HELCIM_TEST_PARTNER_TOKEN, PartnerTokens, PaymentSettings, WhenAbsent};
use recon_sim::webhooks::WebhookConfig;
use recon_sim::{GenerateConfig, RunningSim, SimConfig};

/// A Helcim simulator: the v2 API with its quirks and rate limits, signed webhooks to
/// a receiver, ground truth and faults under /sim/.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to serve on.
    #[arg(long, env = "SIM_ADDR", default_value = "127.0.0.1:8070")]
    addr: std::net::SocketAddr,
    /// Seed: the same seed gives the same activity, ids and tokens.
    #[arg(long, env = "SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// Number of merchant accounts.
    #[arg(long, env = "SIM_ACCOUNTS", default_value_t = 2)]
    accounts: usize,
    /// Card transactions per account.
    #[arg(long, env = "SIM_TRANSACTIONS_PER_ACCOUNT", default_value_t = 250)]
    transactions_per_account: usize,
    /// First day of activity (Mountain Time, YYYY-MM-DD).
    #[arg(long, env = "SIM_START", default_value = "2026-10-30")]
    start: NaiveDate,
    /// Days of activity.
    #[arg(long, env = "SIM_DAYS", default_value_t = 4)]
    days: u32,
    /// Mountain Time hour at which batches close daily.
    #[arg(long, env = "SIM_BATCH_CLOSE_HOUR", default_value_t = 17)]
    batch_close_hour: u32,
    /// Requests in flight per account (0: no limit).
    #[arg(long, env = "SIM_LIMIT_IN_FLIGHT", default_value_t = 5)]
    limit_in_flight: u32,
    /// Requests per minute per account (0: no limit).
    #[arg(long, env = "SIM_LIMIT_PER_MINUTE", default_value_t = 100)]
    limit_per_minute: u32,
    /// Requests per hour per account (0: no limit).
    #[arg(long, env = "SIM_LIMIT_PER_HOUR", default_value_t = 3000)]
    limit_per_hour: u32,
    /// Faults as JSON, e.g. '{"api":{"errorRate":0.05},"webhooks":{"duplicateRate":0.1}}'.
    #[arg(long, env = "SIM_FAULTS")]
    faults: Option<String>,
    /// Receiver URL for webhooks; `{account_id}` is replaced by each account's id.
    #[arg(long, env = "SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Webhooks started per second (0: as fast as concurrency allows).
    #[arg(long, env = "SIM_WEBHOOK_RATE", default_value_t = 50)]
    webhook_rate: u32,
    /// Webhooks in flight at once.
    #[arg(long, env = "SIM_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    webhook_concurrency: usize,
    /// Attempts per webhook before giving up.
    #[arg(long, env = "SIM_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    webhook_max_attempts: u32,
    /// First retry delay in milliseconds (doubles up to 60 s).
    #[arg(long, env = "SIM_WEBHOOK_RETRY_BASE_MS", default_value_t = 1000)]
    webhook_retry_base_ms: u64,
    /// Do not send the unsigned webhook-settings probe first.
    #[arg(long)]
    no_probe: bool,
    /// Wait for POST /sim/deliveries/start instead of delivering at once.
    #[arg(long)]
    hold_deliveries: bool,
    /// Exit once every webhook was delivered or given up on (a finite run for scripts).
    #[arg(long)]
    exit_when_delivered: bool,
    /// Partner tokens answered `is-valid-partner-token: 1`, comma-separated (any other
    /// token gets 0).
    #[arg(long, env = "SIM_PARTNER_TOKENS", value_delimiter = ',', default_value = HELCIM_TEST_PARTNER_TOKEN, hide_default_value = true, hide_env_values = true)]
    partner_tokens: Vec<String>,
    /// What a partner-program request without a `partner-token` gets: no
    /// `is-valid-partner-token` header (`omit`) or `0` (`zero`).
    #[arg(
        long,
        env = "SIM_PARTNER_TOKEN_ABSENT",
        value_enum,
        default_value = "omit"
    )]
    partner_token_absent: WhenAbsent,
    /// How long an idempotency key is remembered, in seconds (Helcim: 300).
    #[arg(long, env = "SIM_IDEMPOTENCY_TTL_SECS", default_value_t = 300)]
    idempotency_ttl_secs: u64,
    /// Milliseconds a Smart Terminal customer takes before the default outcome (0:
    /// wait for POST /sim/devices/{code}/complete).
    #[arg(long, env = "SIM_TERMINAL_DELAY_MS", default_value_t = 2000)]
    terminal_delay_ms: u64,
    /// Write the accounts (ids and their fake tokens) as JSON to this file.
    #[arg(long, env = "SIM_ACCOUNTS_OUT")]
    accounts_out: Option<PathBuf>,
    /// Where the simulator's clock starts (RFC 3339; default: now). Run-time
    /// transactions are dated by it and batches close by it.
    #[arg(long, env = "SIM_CLOCK_START")]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Simulated seconds per real second.
    #[arg(long, env = "SIM_CLOCK_SPEED", default_value_t = 1)]
    clock_speed: u32,
    /// Close open batches during the run, daily at --batch-close-hour (Mountain Time).
    #[arg(long, env = "SIM_CLOSE_BATCHES", default_value_t = false, action = clap::ArgAction::Set)]
    close_batches: bool,
    /// Close each batch this many simulated seconds after it opened (implies
    /// closing batches; overrides the daily hour).
    #[arg(long, env = "SIM_BATCH_CLOSE_EVERY")]
    batch_close_every: Option<u64>,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: LogFormat,
}

fn limit(value: u32) -> Option<u32> {
    (value > 0).then_some(value)
}

impl Args {
    fn into_config(self) -> anyhow::Result<SimConfig> {
        let faults: Faults = match &self.faults {
            Some(json) => {
                serde_json::from_str(json).context("SIM_FAULTS is not valid faults JSON")?
            }
            None => Faults::default(),
        };
        let webhooks = self.webhook_url.map(|url| WebhookConfig {
            rate_per_second: limit(self.webhook_rate),
            concurrency: self.webhook_concurrency,
            max_attempts: self.webhook_max_attempts,
            retry_base: Duration::from_millis(self.webhook_retry_base_ms),
            probe: !self.no_probe,
            ..WebhookConfig::new(url)
        });
        let batch_closing = match (self.batch_close_every, self.close_batches) {
            (Some(0), _) => anyhow::bail!("SIM_BATCH_CLOSE_EVERY must be at least 1 second"),
            (Some(seconds), _) => Some(BatchClosing::Every(chrono::Duration::seconds(
                i64::try_from(seconds).context("SIM_BATCH_CLOSE_EVERY is too large")?,
            ))),
            (None, true) => Some(BatchClosing::Daily {
                hour: self.batch_close_hour,
            }),
            (None, false) => None,
        };
        Ok(SimConfig {
            clock_start: self.clock_start,
            clock_speed: self.clock_speed.max(1),
            batch_closing,
            listen: self.addr,
            generate: GenerateConfig {
                seed: self.seed,
                accounts: self.accounts,
                transactions_per_account: self.transactions_per_account,
                start: self.start,
                days: self.days,
                batch_close_hour: self.batch_close_hour,
            },
            limits: RateLimits {
                in_flight: limit(self.limit_in_flight),
                per_minute: limit(self.limit_per_minute),
                per_hour: limit(self.limit_per_hour),
            },
            faults,
            deliver_on_start: webhooks.is_some() && !self.hold_deliveries,
            webhooks,
            workers: 2,
            payments: PaymentSettings {
                partner_tokens: PartnerTokens {
                    valid: self
                        .partner_tokens
                        .into_iter()
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect(),
                    when_absent: self.partner_token_absent,
                },
                idempotency_ttl: Duration::from_secs(self.idempotency_ttl_secs),
                terminal_delay: (self.terminal_delay_ms > 0)
                    .then(|| Duration::from_millis(self.terminal_delay_ms)),
            },
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let exit_when_delivered = args.exit_when_delivered;
    let accounts_out = args.accounts_out.clone();
    let config = args.into_config()?;
    if config.generate.batch_close_hour > 23 {
        anyhow::bail!("--batch-close-hour must be 0 to 23");
    }
    let has_webhooks = config.webhooks.is_some();
    let mut sim = RunningSim::start(config).await?;
    let activity = &sim.state().activity;
    tracing::info!(
        api = %sim.api_base_url(),
        accounts = activity.accounts.len(),
        transactions = activity.transactions.len(),
        batches = activity.batches.len(),
        "recon-sim is serving"
    );
    if let Some(path) = accounts_out {
        let json = serde_json::to_string_pretty(&activity.accounts)?;
        std::fs::write(&path, json)
            .with_context(|| format!("Failed to write {}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote the simulated accounts and their tokens");
    }
    let state = std::sync::Arc::clone(sim.state());
    tokio::select! {
        _ = recon_common::shutdown::signal() => tracing::info!("stopping on signal"),
        _ = state.deliveries.wait_finished(), if exit_when_delivered && has_webhooks => {
            tracing::info!(summary = ?state.deliveries.summary(), "every webhook delivered or given up on; exiting");
        }
        result = sim.serve_until_stopped() => return result,
    }
    sim.stop().await;
    Ok(())
}
