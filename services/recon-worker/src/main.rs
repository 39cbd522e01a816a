//! `recon-worker`: see `recon-worker --help` and docs/worker.md.

use recon_common::telemetry;
use recon_worker::config::Settings;
use recon_worker::startup::Worker;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log_format);
    let worker = Worker::build(&settings).await?;
    tracing::info!(port = worker.port(), prefix = %settings.amqp.prefix, "recon-worker is starting");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        recon_common::shutdown::signal().await;
        tracing::info!("stopping: finishing the jobs in flight");
        stop.cancel();
    });
    worker.run_until_stopped(shutdown).await
}
