//! `reconctl dlq list|replay`.

use clap::{Args, Subcommand};
use recon_queue::dead_letters;
use recon_queue::{AmqpSettings, Broker};

#[derive(Debug, Args)]
pub struct Amqp {
    #[command(flatten)]
    settings: AmqpSettings,
}

impl Amqp {
    /// A broker for AMQP_URL (environment only: it holds a password).
    pub fn broker(mut self) -> anyhow::Result<Broker> {
        self.settings
            .read_secrets(&recon_common::secrets::ProcessEnv)?;
        Ok(Broker::new(self.settings.broker_config("reconctl")))
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// What is in the dead-letter queue, and why, a page at a time; every message
    /// stays in the queue.
    List {
        /// Dead letters to show.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Where to start (0 = the oldest); each page prints the next offset.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[command(flatten)]
        amqp: Amqp,
    },
    /// Put dead letters back on the work queue (all, or one webhook id).
    Replay {
        #[arg(long)]
        webhook_id: Option<String>,
        #[command(flatten)]
        amqp: Amqp,
    },
}

pub async fn run_dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            limit,
            offset,
            amqp,
        } => {
            anyhow::ensure!(limit > 0, "--limit must be at least 1");
            let broker = amqp.broker()?;
            let page = dead_letters::list(&broker, offset, limit).await?;
            println!("{} dead letters from position {offset}", page.letters.len());
            for letter in page.letters {
                println!(
                    "{}\t{}\t{}\t{}\t{}\treplays {}\t{}",
                    letter.position,
                    letter.webhook_id,
                    letter.account_id,
                    letter.event_type,
                    letter.object_id.unwrap_or_default(),
                    letter.replays,
                    letter.reason
                );
            }
            match page.next_offset {
                Some(next) => println!("more: reconctl dlq list --offset {next} --limit {limit}"),
                None => println!("end of the dead-letter queue"),
            }
            broker.close().await;
        }
        DlqCommand::Replay { webhook_id, amqp } => {
            let broker = amqp.broker()?;
            let count = dead_letters::replay(&broker, webhook_id.as_deref()).await?;
            println!("replayed {count} dead letters onto the work queue");
            broker.close().await;
        }
    }
    Ok(())
}
