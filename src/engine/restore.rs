//! `partwarden restore`: one recorded export planned as a [`Action::RestorePartition`]
//! and run by the executor, like any other action (retries, locks, outcome).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::apply::{apply_plan, ActionOutcome, ApplyContext, RetryPolicy};
use crate::archive::record;
use crate::calendar;
use crate::catalog;
use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::plan::{Action, Plan, PlannedAction};

/// Which export to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// `--table`: a name or `schema.name`.
    pub table: String,
    /// `--partition`, or the partition of the interval holding `--at`.
    pub partition: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// `--run`: a run id; the latest export of the partition when `None`.
    pub run: Option<String>,
    /// How long the restored partition is kept from expiry.
    pub hold: Duration,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub plan: Plan,
    pub outcomes: Vec<ActionOutcome>,
}

impl RestoreReport {
    pub fn succeeded(&self) -> bool {
        self.outcomes.iter().all(ActionOutcome::ok)
    }
}

/// Plans the restore (and runs it unless `dry_run`) on `conn`, which the caller has
/// taken the run lock on.
pub async fn restore_partition(
    pool: &sqlx::PgPool,
    conn: &mut sqlx::PgConnection,
    config: &Config,
    req: &RestoreRequest,
) -> Result<RestoreReport, Error> {
    let table = config.find_table(&req.table)?;
    let partition = match (&req.partition, req.at) {
        (Some(p), None) => p.clone(),
        (None, Some(at)) => {
            let b = table.interval.bounds_containing(at);
            calendar::partition_name(table.name.as_str(), table.interval, b.from)
        }
        _ => {
            return Err(ConfigError::Invalid {
                key: "--partition".into(),
                message: "give --partition NAME or --at INSTANT (one of them)".into(),
            }
            .into())
        }
    };
    let label = table.label();
    let Some(row) = record::find(conn, &label, &partition, req.run.as_deref()).await? else {
        let what = match &req.run {
            Some(r) => format!("export {r} of {partition}"),
            None => format!("export of {partition}"),
        };
        return Err(ConfigError::Invalid {
            key: if req.run.is_some() {
                "--run"
            } else {
                "--partition"
            }
            .into(),
            message: format!("partwarden_exports records no {what} of {label}"),
        }
        .into());
    };
    if row.state == "restored" {
        return Err(ConfigError::Invalid {
            key: "--partition".into(),
            message: format!(
                "export {} of {partition} was restored already (partwarden_exports); it is a partition again",
                row.run_id
            ),
        }
        .into());
    }
    let snap = catalog::read_table(conn, table).await?;
    let now = Utc::now();
    let hold_until = now + req.hold;
    let bounds = calendar::PartitionBounds {
        from: row.range_from,
        to: row.range_to,
    };
    let plan = Plan {
        table: label.clone(),
        now,
        cutoff: table.retention.cutoff(now),
        actions: vec![PlannedAction {
            action: Action::RestorePartition {
                partition,
                bounds,
                run_id: row.run_id.clone(),
                rows: row.row_count.max(0) as u64,
                hold_until,
            },
            reason: format!(
                "partwarden restore: export {} in {}",
                row.run_id, row.store_url
            ),
        }],
        notes: Vec::new(),
    };
    if req.dry_run {
        return Ok(RestoreReport {
            plan,
            outcomes: Vec::new(),
        });
    }
    let retry = RetryPolicy {
        attempts: config.database.ddl_attempts,
        backoff: config.database.ddl_backoff,
        lock_wait: config.database.lock_wait,
    };
    let ctx = ApplyContext {
        retry: &retry,
        stop: None,
        monitor: Some(pool),
    };
    let outcomes = apply_plan(conn, table, &snap, &plan, ctx).await;
    Ok(RestoreReport { plan, outcomes })
}
