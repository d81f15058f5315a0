//! batch-worker binary: settings, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = batch_worker::Settings::load()?;
    let _telemetry = common::telemetry::init("batch-worker", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    batch_worker::run(settings, shutdown).await
}
