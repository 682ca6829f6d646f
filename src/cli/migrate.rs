//! `partwarden migrate`: the embedded SQL migrations (schema, RLS, SQL functions).

use std::process::ExitCode;

use partwarden::config::Config;

pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let pool = super::pool(config).await?;
    let applied = partwarden::engine::migrate::run(&pool).await?;
    if applied.is_empty() {
        println!("migrations: up to date");
    } else {
        for v in applied {
            println!("migrations: applied {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
