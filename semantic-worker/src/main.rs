//! semantic-worker binary: settings, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = semantic_worker::Settings::load()?;
    let _telemetry = common::telemetry::init("semantic-worker", &settings.core)?;
    let shutdown = common::shutdown::on_signal();
    semantic_worker::run(settings, shutdown).await
}
