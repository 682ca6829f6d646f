//! `[probe]`: the latency probe query.

use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::fields::{duration_at, MAX_PG_TIMEOUT_MS};

/// `[probe]`: a query whose latency is measured as a histogram (for the P95 alert).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Default false.
    pub enabled: bool,
    /// Default 60s.
    pub interval: Duration,
    /// Default 5s.
    pub statement_timeout: Duration,
    /// Tenant to set as `app.current_tenant_id` (RLS) for the probe; a UUID, normalised
    /// to lowercase hyphenated form. Default none.
    pub tenant_id: Option<String>,
    /// SQL of the probe; `None` means the daemon's built-in date-range query.
    pub query: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProbe {
    enabled: Option<bool>,
    interval: Option<String>,
    statement_timeout: Option<String>,
    tenant_id: Option<String>,
    query: Option<String>,
}

pub(super) fn probe_config(
    raw: RawProbe,
    warnings: &mut Vec<String>,
) -> Result<ProbeConfig, ConfigError> {
    let enabled = raw.enabled.unwrap_or(false);
    let interval = duration_at(
        "probe.interval",
        raw.interval,
        Duration::from_secs(60),
        None,
    )?;
    let statement_timeout = duration_at(
        "probe.statement_timeout",
        raw.statement_timeout,
        Duration::from_secs(5),
        Some(MAX_PG_TIMEOUT_MS),
    )?;
    let tenant_id = match raw
        .tenant_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            uuid::Uuid::parse_str(&s)
                .map_err(|_| invalid("probe.tenant_id", format!("{s:?} is not a UUID")))?
                .hyphenated()
                .to_string(),
        ),
    };
    let query = match raw.query {
        None => None,
        Some(q) if q.trim().is_empty() => {
            return Err(invalid(
                "probe.query",
                "must not be empty (remove the key to use the built-in query)",
            ))
        }
        Some(q) => Some(q),
    };
    if enabled && tenant_id.is_none() {
        warnings.push(
            "probe.enabled is true but probe.tenant_id is unset: with forced row-level security the probe sees no rows"
                .to_owned(),
        );
    }
    Ok(ProbeConfig {
        enabled,
        interval,
        statement_timeout,
        tenant_id,
        query,
    })
}
