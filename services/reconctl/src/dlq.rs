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
    pub fn broker(self) -> Broker {
        Broker::new(self.settings.broker_config("reconctl"))
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// What is in the dead-letter queue, and why.
    List {
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
        DlqCommand::List { amqp } => {
            let broker = amqp.broker();
            let letters = dead_letters::list(&broker).await?;
            println!("{} dead letters", letters.len());
            for letter in letters {
                println!(
                    "{}\t{}\t{}\t{}\treplays {}\t{}",
                    letter.webhook_id,
                    letter.account_id,
                    letter.event_type,
                    letter.object_id.unwrap_or_default(),
                    letter.replays,
                    letter.reason
                );
            }
            broker.close().await;
        }
        DlqCommand::Replay { webhook_id, amqp } => {
            let broker = amqp.broker();
            let count = dead_letters::replay(&broker, webhook_id.as_deref()).await?;
            println!("replayed {count} dead letters onto the work queue");
            broker.close().await;
        }
    }
    Ok(())
}
