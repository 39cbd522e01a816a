//! `recon-gateway`: see `recon-gateway --help` and docs/gateway.md.

use recon_common::telemetry;
use recon_gateway::config::Settings;
use recon_gateway::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.log_format);
    let app = Application::build(&settings).await?;
    tracing::info!(
        addr = %settings.addr,
        port = app.port(),
        metrics_port = ?app.metrics_port(),
        spool = %settings.spool_dir.display(),
        "recon-gateway is listening"
    );
    let stopper = app.stopper();
    tokio::spawn(async move {
        recon_common::shutdown::signal().await;
        tracing::info!("stopping: finishing requests in flight, then writing spooled evidence");
        stopper.stop().await;
    });
    app.run_until_stopped().await
}
