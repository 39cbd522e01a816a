//! `reconctl`: the operator's command line. See `reconctl --help`.
//!
//! Secrets are read from an environment variable named on the command line
//! (`--verifier-token-env NAME`) or from standard input (`--verifier-token-stdin`),
//! never from the command line itself, where `ps` and shell history would keep them.

// A command line answers on standard output; logs go to standard error.
#![allow(clippy::print_stdout)]

mod accounts;
mod api_keys;
mod dlq;
mod queues;

use clap::{Parser, Subcommand};
use recon_common::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Operate helcim-recon: migrate, accounts, keys, queues."
)]
struct Cli {
    /// Postgres URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/helcim_recon",
        hide_default_value = true
    )]
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
    /// API keys for recon-api.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(api_keys::ApiKeysCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    }
}
