//! `reconctl exceptions list|show|ack|resolve`: reconciliation exceptions straight
//! from the database, for every account (an operator's view). Acknowledging and
//! resolving follow the workflow's rules (open → acknowledged → resolved; resolving
//! needs a note; a resolved exception stays resolved) and record the actor
//! `reconctl:<$USER>` (`reconctl` when USER is not set).

use anyhow::bail;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use recon_money::format_minor_units;
use recon_store::reconciliation::exceptions::{
    self, ActionError, DEFAULT_LIMIT, Exception, ExceptionClass, ExceptionEvent, ExceptionFilter,
    ExceptionStatus, MAX_LIMIT, Page,
};

#[derive(Debug, Args)]
pub struct ExceptionsArgs {
    #[command(subcommand)]
    command: ExceptionsCommand,
}

fn class(text: &str) -> Result<ExceptionClass, String> {
    ExceptionClass::parse(text.trim()).map_err(|e| e.to_string())
}

fn status(text: &str) -> Result<ExceptionStatus, String> {
    ExceptionStatus::parse(text.trim()).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum ExceptionsCommand {
    /// List exceptions, newest first, tab-separated (or JSON).
    List {
        #[arg(long)]
        account: Option<String>,
        /// missed_webhook, missing_in_api, batch_mismatch, amount_changed, status_changed,
        /// batch_changed, currency_mismatch, duplicate_suspect, orphan_refund or
        /// unknown_status.
        #[arg(long, value_parser = class)]
        class: Option<ExceptionClass>,
        /// open, acknowledged or resolved.
        #[arg(long, value_parser = status)]
        status: Option<ExceptionStatus>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
        limit: u32,
        /// The next (older) page: the id the previous listing printed.
        #[arg(long)]
        after: Option<i64>,
        /// JSON instead of tab-separated text.
        #[arg(long)]
        json: bool,
    },
    /// One exception with its evidence and audit trail.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Mark an open exception as seen.
    Ack {
        id: i64,
        /// What you are doing about it (optional, at most 2,000 characters).
        #[arg(long)]
        note: Option<String>,
    },
    /// Resolve an open or acknowledged exception; final (the same cause seen again
    /// does not reopen it).
    Resolve {
        id: i64,
        /// Why (required, at most 2,000 characters).
        #[arg(long)]
        note: String,
    },
}

/// `reconctl:<user>`: who ran the command, as the login shell names them.
fn actor() -> String {
    let user: String = std::env::var("USER")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        .take(64)
        .collect();
    if user.is_empty() {
        "reconctl".to_string()
    } else {
        format!("reconctl:{user}")
    }
}

pub async fn run(database_url: &str, args: ExceptionsArgs) -> anyhow::Result<()> {
    let pool = recon_store::database::connect(database_url).await?;
    match args.command {
        ExceptionsCommand::List {
            account,
            class,
            status,
            limit,
            after,
            json,
        } => {
            let filter = ExceptionFilter {
                account,
                class,
                status,
                ..ExceptionFilter::default()
            };
            let page = exceptions::list(&pool, &filter, after, limit).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "exceptions": page.exceptions,
                        "nextAfterId": page.next_after_id,
                    })
                );
            } else {
                print!("{}", render_list(&page));
            }
        }
        ExceptionsCommand::Show { id, json } => {
            let Some((exception, events)) = exceptions::get(&pool, id).await? else {
                bail!("no exception {id}; `reconctl exceptions list` lists them");
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"exception": exception, "events": events})
                );
            } else {
                print!("{}", render_one(&exception, &events));
            }
        }
        ExceptionsCommand::Ack { id, note } => {
            let done = exceptions::acknowledge(&pool, id, &actor(), note.as_deref()).await;
            report(id, done)?;
        }
        ExceptionsCommand::Resolve { id, note } => {
            let done = exceptions::resolve(&pool, id, &actor(), &note).await;
            report(id, done)?;
        }
    }
    Ok(())
}

fn report(id: i64, done: Result<Exception, ActionError>) -> anyhow::Result<()> {
    match done {
        Ok(exception) => {
            println!(
                "exception {} is now {} (by {})",
                exception.id,
                exception.status.as_str(),
                actor()
            );
            Ok(())
        }
        Err(ActionError::NotFound(_)) => {
            bail!("no exception {id}; `reconctl exceptions list` lists them")
        }
        Err(ActionError::Note(error)) => bail!("--note: {error}"),
        Err(error @ ActionError::Refused { .. }) => bail!("{error}"),
        Err(ActionError::Database(error)) => Err(error.into()),
    }
}

/// The listing's header: scripts find columns by these names.
pub const LIST_HEADER: &str =
    "id\taccount\tclass\tstatus\ttransaction\tbatch\tamount\tcurrency\tdetected\tsummary";

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn amount(exception: &Exception) -> String {
    dash(exception.amount_minor.map(|m| format_minor_units(m, 2)))
}

/// Keeps a summary on its line (summaries are one line, but stay safe).
fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

fn render_list(page: &Page) -> String {
    let mut out = format!("{LIST_HEADER}\n");
    for e in &page.exceptions {
        let row = [
            e.id.to_string(),
            e.account_id.clone(),
            e.class.to_string(),
            e.status.as_str().to_string(),
            dash(e.transaction_id),
            dash(e.card_batch_id),
            amount(e),
            dash(e.currency.as_deref()),
            time(e.detected_at),
            one_line(&e.summary),
        ];
        out.push_str(&row.join("\t"));
        out.push('\n');
    }
    let count = match page.exceptions.len() {
        1 => "1 exception".to_string(),
        n => format!("{n} exceptions"),
    };
    match page.next_after_id {
        Some(after) => out.push_str(&format!(
            "{count} shown; older ones with the same filters and --after {after}\n"
        )),
        None => out.push_str(&format!("{count}\n")),
    }
    out
}

fn render_one(e: &Exception, events: &[ExceptionEvent]) -> String {
    let by = |who: &Option<String>, at: Option<DateTime<Utc>>| match (who, at) {
        (Some(who), Some(at)) => format!("{} by {who}", time(at)),
        _ => "-".to_string(),
    };
    let mut out = format!("exception {} ({}, {})\n", e.id, e.class, e.status.as_str());
    let fields = [
        ("account", e.account_id.clone()),
        ("transaction", dash(e.transaction_id)),
        ("card batch", dash(e.card_batch_id)),
        (
            "amount",
            match &e.currency {
                Some(currency) => format!("{} {currency}", amount(e)),
                None => amount(e),
            },
        ),
        ("summary", one_line(&e.summary)),
        ("key", e.dedupe_key.clone()),
        ("detected", time(e.detected_at)),
        ("acknowledged", by(&e.acknowledged_by, e.acknowledged_at)),
        ("resolved", by(&e.resolved_by, e.resolved_at)),
        ("resolution", dash(e.resolution.map(|r| r.as_str()))),
        ("note", dash(e.note.as_deref().map(one_line))),
        ("evidence", e.evidence.to_string()),
    ];
    for (name, value) in fields {
        out.push_str(&format!("{name:<13}{value}\n"));
    }
    out.push_str("\naudit trail:\n");
    for event in events {
        out.push_str(&format!(
            "{}\t{}\t{}\t{} -> {}",
            time(event.at),
            event.actor,
            event.action,
            event.from_status.as_deref().unwrap_or("-"),
            event.to_status
        ));
        if let Some(note) = &event.note {
            out.push_str(&format!("\t{}", one_line(note)));
        }
        out.push('\n');
    }
    out
}
