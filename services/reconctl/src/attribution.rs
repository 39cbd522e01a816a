//! `reconctl attribution gaps|report|acknowledge|resolve|summary`: the gaps and month
//! reports straight from the database, for every account (an operator's view; the
//! API is the partner's). Acknowledging and resolving follow the API's rules (a note,
//! open → acknowledged, open|acknowledged → resolved, nothing after the close) and
//! record the actor `reconctl:<$USER>`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use recon_attribution::{Clock, CloseCalendar, GapClass, GapStatus, Month};
use recon_store::attribution::backfill;
use recon_store::attribution::documents::{self, Format};
use recon_store::attribution::gaps::{self, ActionError, GapFilter, Note, Scope};

use crate::attribution_render;

#[derive(Debug, Args)]
pub struct AttributionArgs {
    /// The time zone whose calendar month Helcim closes (as the worker's).
    #[arg(long, env = "RECON_CLOSE_TIMEZONE", default_value = "America/Edmonton", value_parser = CloseCalendar::from_name, global = true)]
    close_timezone: CloseCalendar,
    /// Tests and drills only: a file holding seconds to add to the system clock.
    #[arg(long, env = "RECON_CLOCK_OFFSET_FILE", global = true)]
    clock_offset_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AttributionCommand,
}

fn month(text: &str) -> Result<Month, String> {
    text.trim()
        .parse()
        .map_err(|e: recon_attribution::month::MonthError| e.to_string())
}

fn class(text: &str) -> Result<GapClass, String> {
    text.trim()
        .parse()
        .map_err(|e: recon_attribution::model::UnknownName| e.to_string())
}

fn status(text: &str) -> Result<GapStatus, String> {
    text.trim()
        .parse()
        .map_err(|e: recon_attribution::model::UnknownName| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum AttributionCommand {
    /// List gaps, oldest first, tab-separated.
    Gaps {
        /// YYYY-MM, in the close time zone.
        #[arg(long, value_parser = month)]
        month: Option<Month>,
        #[arg(long)]
        account: Option<String>,
        /// token_rejected, token_missing, unattributed or orphan_evidence.
        #[arg(long, value_parser = class)]
        class: Option<GapClass>,
        /// open, acknowledged, resolved or expired.
        #[arg(long, value_parser = status)]
        status: Option<GapStatus>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = gaps::DEFAULT_LIMIT, value_parser = clap::value_parser!(u32).range(1..=i64::from(gaps::MAX_LIMIT)))]
        limit: u32,
        /// The next page: the cursor the previous listing printed (same filters).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Print a month's report: the frozen document's bytes once the month is frozen,
    /// else the live report.
    Report {
        #[arg(long, value_parser = month)]
        month: Month,
        /// One account's report (default: every account).
        #[arg(long)]
        account: Option<String>,
        /// CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
    /// Mark an open gap as seen (it stays at risk).
    Acknowledge {
        #[arg(long)]
        gap: i64,
        /// Why (required, at most 2,000 characters).
        #[arg(long)]
        note: String,
    },
    /// Resolve an open or acknowledged gap by hand (its share is written off: the
    /// transaction's verdict becomes `waived`).
    Resolve {
        #[arg(long)]
        gap: i64,
        /// Why (required, at most 2,000 characters).
        #[arg(long)]
        note: String,
    },
    /// Mark dirty every stored ledger transaction and every piece of evidence of
    /// `--from-month` and later months that are not frozen, so the engine judges rows
    /// stored before attribution was installed (docs/attribution.md, upgrading).
    Backfill {
        /// YYYY-MM, in the close time zone (default: the month now is in).
        #[arg(long, value_parser = month)]
        from_month: Option<Month>,
    },
    /// Gaps by class, money and share at risk, and the time to the close.
    Summary {
        /// Default: the month now is in.
        #[arg(long, value_parser = month)]
        month: Option<Month>,
    },
}

/// `reconctl:<user>`: who ran the command, as the login shell names them.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        .take(64)
        .collect();
    format!(
        "reconctl:{}",
        if user.is_empty() { "unknown" } else { &user }
    )
}

pub async fn run(database_url: &str, args: AttributionArgs) -> anyhow::Result<()> {
    let pool = recon_store::database::connect(database_url).await?;
    let calendar = args.close_timezone;
    let clock = match &args.clock_offset_file {
        Some(path) => {
            let clock = Clock::with_offset_file(path);
            // Loud, on standard error: gap actions and "now" of the report follow it.
            let ahead =
                ((clock.now() - chrono::Utc::now()).num_milliseconds() + 500).div_euclid(1000);
            eprintln!(
                "warning: RECON_CLOCK_OFFSET_FILE is set ({}): this command's clock is {ahead} s ahead of the system's (tests and drills only; unset it in production)",
                path.display()
            );
            clock
        }
        None => Clock::system(),
    };
    match args.command {
        AttributionCommand::Gaps {
            month,
            account,
            class,
            status,
            limit,
            cursor,
        } => {
            let filter = GapFilter {
                month,
                account,
                class,
                status,
            };
            let page = gaps::list(&pool, &Scope::All, &filter, limit, cursor.as_deref())
                .await?
                .map_err(|e| anyhow::anyhow!("--cursor: {e}"))?;
            print!(
                "{}",
                attribution_render::gaps(&page.gaps, page.next_cursor.as_deref())
            );
        }
        AttributionCommand::Report {
            month,
            account,
            csv,
        } => {
            let scope = match account {
                Some(account) => {
                    let known: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)",
                    )
                    .bind(&account)
                    .fetch_one(&pool)
                    .await?;
                    if !known {
                        bail!("no account {account:?}; `reconctl accounts list` shows them");
                    }
                    Scope::Accounts(vec![account])
                }
                None => Scope::All,
            };
            let format = if csv { Format::Csv } else { Format::Json };
            let document =
                documents::report(&pool, calendar, month, &scope, format, clock.now()).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(&document.body)
                .and_then(|()| out.flush())
                .context("Failed to write the report to standard output")?;
        }
        AttributionCommand::Acknowledge { gap, note } => {
            act(&pool, gap, &note, &clock, false).await?;
        }
        AttributionCommand::Resolve { gap, note } => {
            act(&pool, gap, &note, &clock, true).await?;
        }
        AttributionCommand::Backfill { from_month } => {
            let from = from_month.unwrap_or_else(|| calendar.month_of(clock.now()));
            let done = backfill::mark_from(&pool, calendar, from, backfill::BATCH).await?;
            println!(
                "marked {} ledger transactions and {} evidence of {from} and later for the attribution engine{}",
                done.transactions,
                done.evidence,
                match done.frozen_months_skipped {
                    0 => String::new(),
                    n => format!(" ({n} frozen months skipped)"),
                }
            );
        }
        AttributionCommand::Summary { month } => {
            let now = clock.now();
            let month = month.unwrap_or_else(|| calendar.month_of(now));
            let summary = gaps::summary(&pool, month).await?;
            print!(
                "{}",
                attribution_render::summary(
                    &summary,
                    calendar.close_of(month),
                    calendar.zone().name(),
                    now
                )
            );
        }
    }
    Ok(())
}

async fn act(
    pool: &sqlx::PgPool,
    gap: i64,
    note: &str,
    clock: &Clock,
    resolve: bool,
) -> anyhow::Result<()> {
    let note = Note::parse(note).map_err(|e| anyhow::anyhow!("--note: {e}"))?;
    let actor = actor();
    let done = if resolve {
        gaps::resolve(pool, gap, &Scope::All, &actor, &note, clock.now()).await
    } else {
        gaps::acknowledge(pool, gap, &Scope::All, &actor, &note, clock.now()).await
    };
    match done {
        Ok(gap) => {
            println!("gap {} is now {} (by {actor})", gap.id, gap.status);
            Ok(())
        }
        Err(ActionError::NotFound) => {
            bail!("no gap {gap}; `reconctl attribution gaps` lists them")
        }
        Err(ActionError::Conflict { message, .. }) => bail!("{message}"),
        Err(ActionError::Database(error)) => Err(error.into()),
    }
}
