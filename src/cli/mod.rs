//! The verbs of the command line, one module each, and their presentation ([`render`]);
//! the logic lives in the library.

pub mod check_config;
pub mod maintain;
pub mod migrate;
pub mod render;
pub mod restore;
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

/// `--now`: an RFC 3339 instant, or a date (its midnight, UTC: partition bounds are UTC).
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "{s:?} is neither a date such as 2027-06-15 nor an RFC 3339 instant such as \
                 2026-11-24T09:00:00Z: {e}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn now_takes_a_date_or_an_instant() {
        let midnight = parse_instant("2027-06-15").unwrap();
        assert_eq!(midnight.to_rfc3339(), "2027-06-15T00:00:00+00:00");
        let t = parse_instant("2026-11-24T09:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T07:00:00+00:00");
        for bad in ["2027-13-01", "tomorrow", "2027-06-15 09:00"] {
            let e = parse_instant(bad).unwrap_err();
            assert!(e.contains("2027-06-15") && e.contains(bad), "{e}");
        }
    }
}
