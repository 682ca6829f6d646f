//! `[log]`: output format and level filter.

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::fields::parse_at;
use super::values::LogFormat;

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A level (`trace|debug|info|warn|error|off`) or an `EnvFilter` directive list such
    /// as `info,partwarden=debug`. Default `info`.
    pub level: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

pub(super) fn log_config(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let format = parse_at("log.format", raw.format, LogFormat::Text)?;
    let level = raw
        .level
        .unwrap_or_else(|| "info".to_owned())
        .trim()
        .to_owned();
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let level = if level.contains(['=', ',']) {
        tracing_subscriber::EnvFilter::try_new(&level)
            .map_err(|e| invalid("log.level", format!("{level:?} is not a valid filter: {e}")))?;
        level
    } else if LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        level.to_ascii_lowercase()
    } else {
        return Err(invalid(
            "log.level",
            format!(
                "{level:?}: expected one of {} or a filter such as \"info,partwarden=debug\"",
                LEVELS.join(", ")
            ),
        ));
    };
    Ok(LogConfig { format, level })
}
