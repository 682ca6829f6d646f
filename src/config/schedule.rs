//! `[schedule]`: when maintenance runs and how often statistics are refreshed.

use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::fields::duration_at;

/// Default maintenance schedule: 02:00:00 UTC every day (6 fields, seconds first).
pub const DEFAULT_MAINTENANCE_CRON: &str = "0 0 2 * * *";

/// `[schedule]`
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    /// 6-field cron expression (seconds first), evaluated in UTC. Validated by building
    /// the tokio-cron-scheduler job the daemon uses. Default `0 0 2 * * *`.
    pub maintenance: String,
    /// How often partition statistics are refreshed for `/metrics`. Default 60s.
    pub stats_interval: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSchedule {
    maintenance: Option<String>,
    stats_interval: Option<String>,
}

/// Validate a maintenance schedule exactly as the daemon will use it: 6 fields (seconds
/// first) and accepted by tokio-cron-scheduler's own constructor (croner with seconds
/// required and day-of-month AND day-of-week), in UTC. Needs no async runtime.
pub fn validate_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        let hint = if fields == 5 {
            format!(
                "; a crontab line has 5, but seconds come first here: \"0 {}\"",
                expr.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        } else {
            String::new()
        };
        return Err(format!(
            "{expr:?} has {fields} fields; expected exactly 6 (second minute hour day-of-month month \
             day-of-week, UTC), such as \"0 0 2 * * *\"{hint}"
        ));
    }
    tokio_cron_scheduler::Job::new_async_tz(expr, chrono::Utc, |_id, _scheduler| Box::pin(async {}))
        .map(|_| ())
        .map_err(|_| format!("{expr:?} is not a valid cron expression (second minute hour day-of-month month day-of-week)"))
}

pub(super) fn schedule_config(raw: RawSchedule) -> Result<ScheduleConfig, ConfigError> {
    let maintenance = raw
        .maintenance
        .unwrap_or_else(|| DEFAULT_MAINTENANCE_CRON.to_owned())
        .trim()
        .to_owned();
    validate_cron(&maintenance).map_err(|m| invalid("schedule.maintenance", m))?;
    let stats_interval = duration_at(
        "schedule.stats_interval",
        raw.stats_interval,
        Duration::from_secs(60),
        None,
    )?;
    Ok(ScheduleConfig {
        maintenance,
        stats_interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::invalid_key;

    #[test]
    fn cron_validation() {
        let msg = invalid_key(
            "[schedule]\nmaintenance = \"0 2 * * *\"\n",
            "schedule.maintenance",
        );
        assert!(
            msg.contains("exactly 6") && msg.contains("\"0 0 2 * * *\""),
            "{msg}"
        );
        invalid_key(
            "[schedule]\nmaintenance = \"0 0 2 * * * 2030\"\n",
            "schedule.maintenance",
        );
        invalid_key(
            "[schedule]\nmaintenance = \"@daily\"\n",
            "schedule.maintenance",
        );
        invalid_key(
            "[schedule]\nmaintenance = \"0 0 25 * * *\"\n",
            "schedule.maintenance",
        );
        invalid_key(
            "[schedule]\nmaintenance = \"a b c d e f\"\n",
            "schedule.maintenance",
        );
        invalid_key("[schedule]\nmaintenance = \"\"\n", "schedule.maintenance");
        for ok in [
            "0 0 2 * * *",
            "*/30 * * * * *",
            "0 0 3 * * Mon-Fri",
            "0 15 1 1 * *",
        ] {
            validate_cron(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}
