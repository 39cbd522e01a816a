//! `reconctl`: the operator's command line. See `reconctl --help`.
//!
//! Secrets are read from an environment variable named on the command line
//! (`--verifier-token-env NAME`) or from standard input (`--verifier-token-stdin`),
//! never from the command line itself, where `ps` and shell history would keep them.
//! So are DATABASE_URL and AMQP_URL (they hold passwords): environment (or a
//! `NAME_FILE`) only.

// A command line answers on standard output; logs go to standard error.
#![allow(clippy::print_stdout)]

mod accounts;
mod accounts_list;
mod alerts;
mod api_keys;
mod attribution;
mod attribution_render;
mod backfill;
mod dlq;
mod exceptions;
mod journal;
mod queues;

use clap::{Parser, Subcommand};
use recon_common::telemetry::{self, LogFormat};
use secrecy::ExposeSecret;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Operate helcim-recon: migrate, accounts, keys, queues, attribution, journal.",
    about = "Operate helcim-recon: migrate, accounts, keys, queues, attribution, exceptions.",
    after_help = "Secrets, from the environment only (or from the file NAME_FILE names):
  DATABASE_URL  Postgres (default: the local helcim_recon database)
  AMQP_URL      RabbitMQ, for queues and dlq (default: the local broker)"
)]
struct Cli {
    /// Postgres URL: `DATABASE_URL` (environment only), read in `main`.
    #[arg(skip = LOCAL_DATABASE_URL.to_string())]
    database_url: String,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if missing and apply the migrations.
    Migrate,
    /// Merchant accounts and their tokens.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Keys for secrets at rest: generate, derive the purpose keys, re-encrypt.
    #[command(subcommand)]
    Keys(accounts::KeysCommand),
    /// Messages waiting in the work, retry and dead-letter queues.
    Queues(queues::QueuesArgs),
    /// The dead-letter queue: list and replay.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Attribution alerts: webhooks that receive them.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// API keys for recon-api.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(api_keys::ApiKeysCommand),
    /// Attribution gaps and month reports: list, acknowledge, resolve, summarise.
    Attribution(attribution::AttributionArgs),
    /// List an account's transactions of a range of Mountain Time dates at Helcim,
    /// record what the ledger lacks, and verify the batches they are in.
    Backfill(backfill::BackfillArgs),
    /// The double-entry journal: balances and entries of an account.
    Journal(journal::JournalArgs),
    /// Reconciliation exceptions: list, show, acknowledge, resolve.
    Exceptions(exceptions::ExceptionsArgs),
}

/// The database when DATABASE_URL is not set: the local one `make run` uses.
const LOCAL_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/helcim_recon";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if let Some(url) = recon_common::secrets::from_env("DATABASE_URL")? {
        cli.database_url = url.expose_secret().to_string();
    }
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Migrate => {
            let created =
                recon_store::database::create_database_if_missing(&cli.database_url).await?;
            let pool = recon_store::database::connect(&cli.database_url).await?;
            recon_store::database::migrate(&pool).await?;
            let target = recon_store::database::describe(&cli.database_url);
            println!(
                "{} {target}; migrations applied",
                if created { "created" } else { "found" }
            );
            Ok(())
        }
        Command::Accounts(command) => accounts::run(&cli.database_url, command).await,
        Command::Keys(command) => accounts::run_keys(&cli.database_url, command).await,
        Command::Queues(args) => queues::run(args).await,
        Command::Dlq(command) => dlq::run_dlq(command).await,
        Command::ApiKeys(command) => api_keys::run(&cli.database_url, command).await,
        Command::Attribution(args) => attribution::run(&cli.database_url, args).await,
        Command::Alerts(command) => alerts::run(&cli.database_url, command).await,
        Command::Backfill(args) => backfill::run(&cli.database_url, args).await,
        Command::Journal(args) => journal::run(&cli.database_url, args).await,
        Command::Exceptions(args) => exceptions::run(&cli.database_url, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_urls_are_not_command_line_flags() {
        for flag in ["--database-url", "--amqp-url"] {
            let error = Cli::try_parse_from(["reconctl", flag, "postgres://u:p@h/db", "queues"])
                .unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{flag}"
            );
        }
        let cli = Cli::try_parse_from(["reconctl", "migrate"]).unwrap();
        assert_eq!(cli.database_url, LOCAL_DATABASE_URL);
    }
}
