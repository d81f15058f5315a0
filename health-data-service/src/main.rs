//! health-data-service binary (see `cli` for its commands).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    health_data_service::cli::main().await
}
