//! The verbs of the command line, one module each, and their presentation ([`render`]);
//! the logic lives in the library.

pub mod check_config;
pub mod maintain;
pub mod migrate;
pub mod render;
pub mod run;
pub mod status;

use chrono::{DateTime, Utc};

use partwarden::config::Config;
use partwarden::error::Error;

/// The pool of the configured database, once the server has answered: a database that
/// cannot be reached fails here at once, naming host:port and the cause.
pub async fn pool(config: &Config) -> anyhow::Result<sqlx::PgPool> {
    let url = config.database_url().map_err(Error::from)?;
    Ok(partwarden::engine::db::checked_pool(
        url.expose(),
        &partwarden::engine::db::SessionSettings::from(&config.database),
    )
    .await?)
}

/// `--now`: an RFC 3339 instant.
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant such as 2026-11-24T09:00:00Z: {e}"))
}
