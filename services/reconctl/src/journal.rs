//! `reconctl journal balances|entries`: an account's books straight from the journal
//! (an operator's view): balances per journal account and currency, as of now or as
//! the journal stood at a time, and the entries with their lines.

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use recon_store::reconciliation::journal::{self, Balance, Entry};

#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    command: JournalCommand,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Balances per journal account and currency (debit positive, credit negative).
    Balances {
        #[arg(long)]
        account: String,
        /// As the journal stood at this time (RFC 3339, e.g. 2026-03-01T00:00:00Z):
        /// entries posted after it are left out.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Entries with their lines, oldest first.
    Entries {
        #[arg(long)]
        account: String,
        /// Entries after this entry id (the next page: the last id printed).
        #[arg(long)]
        after: Option<i64>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(database_url: &str, args: JournalArgs) -> anyhow::Result<()> {
    let pool = recon_store::database::connect(database_url).await?;
    let account = match &args.command {
        JournalCommand::Balances { account, .. } | JournalCommand::Entries { account, .. } => {
            account
        }
    };
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)")
            .bind(account)
            .fetch_one(&pool)
            .await?;
    if !known {
        bail!("no account {account:?}; `reconctl accounts list` shows them");
    }
    match args.command {
        JournalCommand::Balances { account, at, json } => {
            let balances = journal::balances(&pool, &account, at).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&balances)?);
            } else {
                print!("{}", balances_table(&balances));
            }
        }
        JournalCommand::Entries {
            account,
            after,
            limit,
            json,
        } => {
            let entries = journal::entries(&pool, &account, after, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print!("{}", entries_text(&entries));
            }
        }
    }
    Ok(())
}

/// `12.34`, `-0.05`: minor units with two digits, as both Helcim currencies have.
fn amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let units = minor.unsigned_abs();
    format!("{sign}{}.{:02}", units / 100, units % 100)
}

fn balances_table(balances: &[Balance]) -> String {
    if balances.is_empty() {
        return "no journal entries\n".to_string();
    }
    let mut out = String::from("account\tcurrency\tbalance\tbalance_minor\n");
    for b in balances {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            b.account.code(),
            b.currency,
            amount(b.balance_minor),
            b.balance_minor
        ));
    }
    out
}

fn entries_text(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "no journal entries\n".to_string();
    }
    let mut out = String::new();
    for e in entries {
        let optional = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "entry {}\t{}\ttransaction {}\tbatch {}\teffective {}\tposted {}{}\n  {}\n",
            e.id,
            e.kind.as_str(),
            optional(e.transaction_id),
            optional(e.card_batch_id),
            e.effective_at.to_rfc3339(),
            e.posted_at.to_rfc3339(),
            e.reverses_entry_id
                .map(|id| format!("\treverses {id}"))
                .unwrap_or_default(),
            e.memo
        ));
        for line in &e.lines {
            let (debit, credit) = if line.amount_minor > 0 {
                (amount(line.amount_minor), String::new())
            } else {
                (String::new(), amount(-line.amount_minor))
            };
            out.push_str(&format!(
                "  {:<22}{:>14}{:>14} {}\n",
                line.account.code(),
                debit,
                credit,
                line.currency
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_with_two_digits() {
        assert_eq!(amount(1234), "12.34");
        assert_eq!(amount(-5), "-0.05");
        assert_eq!(amount(0), "0.00");
    }
}
