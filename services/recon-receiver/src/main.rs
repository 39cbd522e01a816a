//! `recon-receiver`: see `recon-receiver --help` and docs/receiver.md.

use recon_common::telemetry;
use recon_receiver::config::Settings;
use recon_receiver::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log_format);
    let app = Application::build(&settings, settings.account_sources().await?).await?;
    tracing::info!(addr = %settings.addr, port = app.port(), metrics_port = ?app.metrics_port(), prefix = %settings.amqp.prefix, "recon-receiver is listening");
    let handle = app.handle();
    tokio::spawn(async move {
        recon_common::shutdown::signal().await;
        tracing::info!("stopping: finishing requests in flight");
        handle.stop(true).await;
    });
    app.run_until_stopped().await
}
