//! [`PartitionManager`]: the library API the CLI and the daemon are thin layers over.

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tracing::{info_span, Instrument};

use crate::apply::census::count_default_partition;
use crate::apply::{apply_plan, ActionOutcome, ApplyContext, RetryPolicy, StopFlag};
use crate::calendar::{self, RetentionPeriod};
use crate::catalog::{self, Detail, TableSnapshot};
use crate::config::{Config, TableConfig};
use crate::error::Error;
use crate::plan::health::{all_stats, PartitionStats};
use crate::plan::{plan_table, Action, Plan, PlannedAction};

pub use super::advisory::{LeaderLock, MaintenanceLock, LEADER_LOCK_KEY, MAINTENANCE_LOCK_KEY};

/// `(partition_name, status)` as the SQL functions return them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    pub partition_name: String,
    pub status: String,
}

/// What one maintenance run did to one table (the seed's `run_partition_maintenance`).
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceReport {
    pub table: String,
    pub created_partitions: Vec<String>,
    pub expired_partitions: Vec<String>,
    pub indexed_partitions: Vec<String>,
    /// Sum of the partitions' `reltuples` estimates after the run (never `count(*)`).
    pub total_events_estimate: u64,
    pub plan: Plan,
    /// What is worth knowing once the run is over: the notes of the state it left (a
    /// dry run's are the plan's). The plan's own notes describe the state before.
    pub notes: Vec<String>,
    pub outcomes: Vec<ActionOutcome>,
}

impl MaintenanceReport {
    pub fn succeeded(&self) -> bool {
        self.outcomes.iter().all(ActionOutcome::ok)
    }
}

/// Manages one partitioned table.
///
/// ```no_run
/// # async fn demo() -> Result<(), partwarden::error::Error> {
/// use partwarden::{config::Config, PartitionManager};
///
/// let config = Config::from_sources(None, &[("DATABASE_URL".into(), "postgres://partwarden@localhost/app".into())])?;
/// let pool = partwarden::engine::db::pool(config.database_url()?.expose(), &(&config.database).into())?;
/// let manager = PartitionManager::new(pool, config.tables[0].clone());
///
/// // Partition for May 2026 (created online, or reported as existing).
/// let at = chrono::DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z").unwrap().to_utc();
/// println!("{}", manager.create_partition(at).await?);
///
/// // Current month through three ahead.
/// for p in manager.ensure_partitions_exist(3).await? {
///     println!("{}: {}", p.partition_name, p.status);
/// }
/// for s in manager.get_partition_stats().await? {
///     println!("{}: {:?} rows, {}", s.partition_name, s.row_count, s.size_pretty);
/// }
/// let report = manager.run_partition_maintenance().await?;
/// println!("created {:?}, expired {:?}, ~{} events",
///          report.created_partitions, report.expired_partitions, report.total_events_estimate);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PartitionManager {
    pool: PgPool,
    table: TableConfig,
    retry: RetryPolicy,
}

impl PartitionManager {
    pub fn new(pool: PgPool, table: TableConfig) -> PartitionManager {
        PartitionManager {
            pool,
            table,
            retry: RetryPolicy::default(),
        }
    }

    /// How often and how patiently DDL that hits `lock_timeout` is retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> PartitionManager {
        self.retry = retry;
        self
    }

    pub fn table(&self) -> &TableConfig {
        &self.table
    }

    fn ctx<'a>(&'a self, stop: Option<&'a StopFlag>) -> ApplyContext<'a> {
        ApplyContext {
            retry: &self.retry,
            stop,
            monitor: Some(&self.pool),
        }
    }

    async fn conn(&self) -> Result<PoolConnection<Postgres>, Error> {
        Ok(self.pool.acquire().await?)
    }

    /// The table as the catalog has it now.
    pub async fn snapshot(&self) -> Result<TableSnapshot, Error> {
        let mut conn = self.conn().await?;
        catalog::read_table(&mut conn, &self.table).await
    }

    /// What a maintenance run at `now` would do.
    pub async fn plan(&self, now: DateTime<Utc>) -> Result<Plan, Error> {
        Ok(plan_table(&self.table, &self.snapshot().await?, now))
    }

    /// Creates (online) the partition of the interval containing `at`.
    pub async fn create_partition(&self, at: DateTime<Utc>) -> Result<String, Error> {
        let bounds = self.table.interval.bounds_containing(at);
        let name =
            calendar::partition_name(self.table.name.as_str(), self.table.interval, bounds.from);
        let mut conn = self.conn().await?;
        let snap = catalog::read_table(&mut conn, &self.table).await?;
        if snap
            .partitions
            .iter()
            .any(|p| p.name == name && !p.detach_pending)
        {
            return Ok(format!("Partition {name} already exists"));
        }
        if let Some(other) = snap
            .partitions
            .iter()
            .find(|p| p.bounds.is_some_and(|b| b.overlaps(&bounds)))
        {
            return Err(Error::Catalog {
                table: self.table.label(),
                message: format!(
                    "{name} {bounds} would overlap existing partition {} {}",
                    other.name, other.bound_expr
                ),
            });
        }
        let plan = single_action_plan(
            &self.table,
            Action::CreatePartition {
                partition: name.clone(),
                bounds,
            },
            "requested",
        );
        let out = apply_plan(&mut conn, &self.table, &snap, &plan, self.ctx(None)).await;
        match out.first() {
            Some(o) if o.ok() => Ok(format!(
                "Successfully created partition {name} for date range {} to {}",
                bounds.from.format("%Y-%m-%d"),
                bounds.to.format("%Y-%m-%d")
            )),
            Some(o) => Err(Error::Ddl {
                table: self.table.label(),
                action: plan.actions[0].action.to_string(),
                message: o.detail.clone(),
            }),
            None => unreachable!("one action planned"),
        }
    }

    /// Makes sure the current interval and `ahead` more have partitions; one status per
    /// interval, like `ensure_ga4_partitions_exist`.
    pub async fn ensure_partitions_exist(&self, ahead: u32) -> Result<Vec<PartitionStatus>, Error> {
        let now = Utc::now();
        let mut out = Vec::new();
        for b in calendar::premake_window(self.table.interval, now, ahead) {
            let status = self.create_partition(b.from).await?;
            let partition_name =
                calendar::partition_name(self.table.name.as_str(), self.table.interval, b.from);
            out.push(PartitionStatus {
                partition_name,
                status,
            });
        }
        Ok(out)
    }

    /// Expires (with the table's retention mode) every partition whose upper bound is at or
    /// before `now - retention`; one status per expired partition.
    pub async fn drop_old_partitions(
        &self,
        retention: RetentionPeriod,
    ) -> Result<Vec<PartitionStatus>, Error> {
        let table = TableConfig {
            retention,
            max_expire_per_run: u32::MAX,
            ..self.table.clone()
        };
        let mut conn = self.conn().await?;
        let snap = catalog::read_table(&mut conn, &table).await?;
        let mut plan = plan_table(&table, &snap, Utc::now());
        plan.actions
            .retain(|a| matches!(a.action, Action::ExpirePartition { .. }));
        let outcomes = apply_plan(&mut conn, &table, &snap, &plan, self.ctx(None)).await;
        let mut out = Vec::new();
        for o in outcomes {
            if !o.ok() {
                return Err(Error::Ddl {
                    table: table.label(),
                    action: o.planned.action.to_string(),
                    message: o.detail,
                });
            }
            out.push(PartitionStatus {
                partition_name: o.planned.action.partition().to_string(),
                status: o.detail,
            });
        }
        Ok(out)
    }

    /// Statistics of every partition from the catalog (one query; estimates, no `count(*)`).
    pub async fn get_partition_stats(&self) -> Result<Vec<PartitionStats>, Error> {
        Ok(all_stats(&self.snapshot().await?))
    }

    /// One full maintenance run now: premake, expiry, RLS, indexes.
    pub async fn run_partition_maintenance(&self) -> Result<MaintenanceReport, Error> {
        let mut conn = self.conn().await?;
        self.maintain_on(&mut conn, Utc::now(), false, None).await
    }

    /// One maintenance run as if it were `now`, on a connection the caller holds (the
    /// daemon holds its advisory lock on it). `dry_run` plans only.
    pub async fn maintain_on(
        &self,
        conn: &mut sqlx::PgConnection,
        now: DateTime<Utc>,
        dry_run: bool,
        stop: Option<&StopFlag>,
    ) -> Result<MaintenanceReport, Error> {
        self.run_on(
            conn,
            now,
            RunKind {
                dry_run,
                backfill: false,
            },
            stop,
        )
        .await
    }

    /// [`Self::maintain_on`], and with `kind.backfill` also the partitions of the past
    /// ranges whose rows wait in the default partition (counted first, see
    /// [`crate::apply::census`]) and of gaps between partitions.
    pub async fn run_on(
        &self,
        conn: &mut sqlx::PgConnection,
        now: DateTime<Utc>,
        kind: RunKind,
        stop: Option<&StopFlag>,
    ) -> Result<MaintenanceReport, Error> {
        let snap = self.maintenance_snapshot(conn).await?;
        let acted = self.act(conn, snap, now, kind, stop).await?;
        let after = if acted.changed() {
            Some(self.maintenance_snapshot(conn).await?)
        } else {
            None
        };
        Ok(acted.finish(&self.table, after.map(Ok)))
    }

    /// The snapshot maintenance plans from: no sizes (see [`catalog::Detail`]).
    async fn maintenance_snapshot(
        &self,
        conn: &mut sqlx::PgConnection,
    ) -> Result<TableSnapshot, Error> {
        let mut one = catalog::read_tables(conn, &[&self.table], Detail::WithoutSizes).await?;
        one.pop().unwrap_or_else(|| {
            Err(Error::Catalog {
                table: self.table.label(),
                message: "the catalog returned no snapshot".into(),
            })
        })
    }

    /// [`Self::run_on`] with the table's snapshot already read, up to the state the run
    /// left: [`Acted::finish`] tells that state from a snapshot read after it (one read for
    /// every table of a run, see [`run_maintenance`]).
    async fn act(
        &self,
        conn: &mut sqlx::PgConnection,
        snap: TableSnapshot,
        now: DateTime<Utc>,
        kind: RunKind,
        stop: Option<&StopFlag>,
    ) -> Result<Acted, Error> {
        let RunKind { dry_run, backfill } = kind;
        let span = info_span!("table", table = %self.table.label());
        let mut snap = snap;
        async move {
            crate::fault::point("maintain_table").await;
            crate::catalog::vector::validate_policy(conn, &self.table).await?;
            let mut standby_note = None;
            if backfill && snap.in_recovery {
                standby_note = Some(
                    "--backfill: a hot standby cannot count the default partition's rows"
                        .to_string(),
                );
            } else if backfill {
                snap.default_census =
                    count_default_partition(conn, &self.table, &snap, &self.retry).await?;
            }
            let mut plan = plan_table(&self.table, &snap, now);
            plan.notes.extend(standby_note);
            fill_expiry_sizes(conn, &snap, &mut plan).await?;
            if snap.in_recovery && !plan.is_empty() {
                plan.notes.push(
                    "the server is a hot standby (pg_is_in_recovery()): nothing is changed".into(),
                );
            }
            let stale_notes = crate::plan::state_notes(&self.table, &snap, &plan);
            let outcomes = if dry_run || snap.in_recovery {
                Vec::new()
            } else {
                apply_plan(conn, &self.table, &snap, &plan, self.ctx(stop)).await
            };
            let done = |f: fn(&Action) -> bool| -> Vec<String> {
                let mut v: Vec<String> = outcomes
                    .iter()
                    .filter(|o| o.ok() && f(&o.planned.action))
                    .map(|o| o.planned.action.partition().to_string())
                    .collect();
                v.dedup();
                v
            };
            let report = MaintenanceReport {
                table: self.table.label(),
                created_partitions: done(|a| {
                    matches!(
                        a,
                        Action::CreatePartition { .. } | Action::CreateDefaultPartition { .. }
                    )
                }),
                expired_partitions: done(|a| matches!(a, Action::ExpirePartition { .. })),
                indexed_partitions: done(|a| {
                    matches!(a, Action::BuildIndex { .. } | Action::RepairIndex { .. })
                }),
                total_events_estimate: snap.rows_estimate(),
                notes: plan.notes.clone(),
                plan,
                outcomes,
            };
            Ok(Acted {
                report,
                stale_notes,
                now,
            })
        }
        .instrument(span)
        .await
    }
}

/// One table's run, acted on, waiting for the state it left to be read.
struct Acted {
    /// Notes and row estimate as before the run, until [`Acted::finish`].
    report: MaintenanceReport,
    /// The plan's notes that describe the table's state (told again from the state after).
    stale_notes: Vec<String>,
    now: DateTime<Utc>,
}

impl Acted {
    /// Whether the run changed anything (a run that did nothing left the state it read).
    fn changed(&self) -> bool {
        !self.report.outcomes.is_empty()
    }

    /// The report, its notes and estimate from `after` (the table's snapshot read after
    /// the run; `None` when nothing changed). A failed read keeps the notes of the state
    /// before and says so: the actions are done either way.
    fn finish(
        mut self,
        table: &TableConfig,
        after: Option<Result<TableSnapshot, String>>,
    ) -> MaintenanceReport {
        match after {
            None => {}
            Some(Ok(after)) => {
                self.report.notes =
                    notes_after(table, &self.report.plan, &self.stale_notes, &after, self.now);
                self.report.total_events_estimate = after.rows_estimate();
            }
            Some(Err(e)) => self.report.notes.push(format!(
                "the catalog could not be read after the run ({e}): the notes describe the table before it"
            )),
        }
        self.report
    }
}

/// The bytes each expiry removes (the maintenance snapshot reads no sizes): one query, and
/// none when nothing expires.
async fn fill_expiry_sizes(
    conn: &mut sqlx::PgConnection,
    snap: &TableSnapshot,
    plan: &mut Plan,
) -> Result<(), Error> {
    let oids: Vec<i64> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.action, Action::ExpirePartition { .. }))
        .filter_map(|a| snap.find(a.action.partition()).map(|p| p.oid))
        .collect();
    if oids.is_empty() {
        return Ok(());
    }
    // On Citus the snapshot has them already, from the shards (the coordinator's are
    // those of empty files).
    let sizes: Vec<(String, i64, i64)> = if snap.citus.is_some() {
        snap.partitions
            .iter()
            .map(|p| (p.name.clone(), p.total_bytes, p.heap_bytes))
            .collect()
    } else {
        local_sizes(conn, &oids).await?
    };
    for a in &mut plan.actions {
        if let Action::ExpirePartition {
            partition,
            bytes,
            rows,
            ..
        } = &mut a.action
        {
            if let Some((_, total, heap)) = sizes.iter().find(|(n, _, _)| n == partition) {
                *bytes = *total;
                if rows.is_none() && *heap == 0 {
                    *rows = Some(0);
                }
            }
        }
    }
    Ok(())
}

/// (name, total bytes, main fork bytes) of the partitions `oids`. The main fork's size
/// too: a partition never analyzed has unknown rows unless it is empty, and a drop should
/// say "0 rows" of an empty one.
async fn local_sizes(
    conn: &mut sqlx::PgConnection,
    oids: &[i64],
) -> Result<Vec<(String, i64, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT relname::text, pg_total_relation_size(oid), pg_relation_size(oid) \
           FROM pg_class WHERE oid = ANY($1::int8[]::oid[])",
    )
    .bind(oids)
    .fetch_all(&mut *conn)
    .await?)
}

/// The plan's notes, with those describing the table's state (gaps, the default
/// partition's rows) told again from the state the run left.
fn notes_after(
    table: &TableConfig,
    plan: &Plan,
    stale: &[String],
    after: &TableSnapshot,
    now: DateTime<Utc>,
) -> Vec<String> {
    let next = plan_table(table, after, now);
    plan.notes
        .iter()
        .filter(|n| !stale.contains(n))
        .cloned()
        .chain(crate::plan::state_notes(table, after, &next))
        .collect()
}

fn single_action_plan(table: &TableConfig, action: Action, reason: &str) -> Plan {
    let now = Utc::now();
    Plan {
        table: table.label(),
        now,
        cutoff: table.retention.cutoff(now),
        actions: vec![PlannedAction {
            action,
            reason: reason.into(),
        }],
        notes: Vec::new(),
    }
}

/// Options of one maintenance run over the configured tables.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plan as if it were this instant (default: now).
    pub now: Option<DateTime<Utc>>,
    pub dry_run: bool,
    /// Also create the partitions of past ranges whose rows wait in the default partition
    /// (`maintain --backfill`).
    pub backfill: bool,
    /// Only this table (`name` or `schema.name`).
    pub only_table: Option<String>,
    /// Stop between actions when set (shutdown).
    pub stop: Option<StopFlag>,
}

/// What a run of one table does besides planning.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunKind {
    /// Plan only.
    pub dry_run: bool,
    /// Count the default partition's rows and create the partitions of past ranges.
    pub backfill: bool,
}

/// One table's part of a run: its report, or why it could not be maintained.
#[derive(Debug, Clone, Serialize)]
pub struct TableRun {
    pub table: String,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub report: Option<MaintenanceReport>,
    /// Why the table could not be maintained, in words that leave out the table (`table`
    /// names it).
    pub error: Option<String>,
    /// The error is in the configuration (exit code 2), not at run time.
    pub usage_error: bool,
}

impl TableRun {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
            && self
                .report
                .as_ref()
                .is_some_and(MaintenanceReport::succeeded)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    pub tables: Vec<TableRun>,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.tables.iter().all(TableRun::succeeded)
    }

    /// Exit code of the CLI: 0, 2 when a table's configuration does not fit its database,
    /// else 1 when anything failed.
    pub fn exit_code(&self) -> u8 {
        if self.succeeded() {
            0
        } else if self.tables.iter().any(|t| t.usage_error) {
            2
        } else {
            1
        }
    }
}

/// Checks every configured table against the database without changing anything: it
/// exists, is range-partitioned on its timestamptz column, and its vector policy fits.
/// Returns one error per table that does not fit (each naming its key); `Err` only when
/// the database cannot be asked.
pub async fn check_tables(
    conn: &mut sqlx::PgConnection,
    config: &Config,
) -> Result<Vec<Error>, Error> {
    let mut problems = Vec::new();
    for table in &config.tables {
        let checked = match catalog::read_table(conn, table).await {
            Ok(_) => crate::catalog::vector::validate_policy(conn, table)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => {}
            Err(e @ Error::Database(_)) => return Err(e),
            Err(e) => problems.push(e),
        }
    }
    Ok(problems)
}

/// How long a snapshot read at the start of a run is planned from; a table whose turn
/// comes later is read again.
const SNAPSHOT_REUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// One maintenance run over every configured table (or one), all on `conn` (the one
/// holding the run lock, [`MAINTENANCE_LOCK_KEY`], unless it is a dry run). A table that fails (missing,
/// misconfigured, DDL errors) does not stop the others.
pub async fn run_maintenance(
    pool: &PgPool,
    conn: &mut sqlx::PgConnection,
    config: &Config,
    opts: &RunOptions,
) -> Result<RunReport, Error> {
    let tables: Vec<&TableConfig> = match &opts.only_table {
        Some(t) => vec![config.find_table(t)?],
        None => config.tables.iter().collect(),
    };
    let now = opts.now.unwrap_or_else(Utc::now);
    let retry = RetryPolicy {
        attempts: config.database.ddl_attempts,
        backoff: config.database.ddl_backoff,
        lock_wait: config.database.lock_wait,
    };
    let kind = RunKind {
        dry_run: opts.dry_run,
        backfill: opts.backfill,
    };
    // Every table's snapshot in one round trip. A table whose turn comes long after (a
    // slow index build before it) is read again, so no plan is made from an old picture.
    // The clock starts when the read is done: at 30,000 partitions the read itself takes
    // seconds, and counting them re-read every table one by one (a no-op run 5x slower).
    let mut snapshots: Vec<Option<Result<TableSnapshot, Error>>> =
        match catalog::read_tables(conn, &tables, Detail::WithoutSizes).await {
            Ok(all) => all.into_iter().map(Some).collect(),
            Err(_) => tables.iter().map(|_| None).collect(),
        };
    let read_at = Instant::now();
    let mut runs = Vec::new();
    let mut acted: Vec<(usize, Acted)> = Vec::new();
    for (k, table) in tables.iter().enumerate() {
        let started_at = Utc::now();
        let clock = Instant::now();
        let manager =
            PartitionManager::new(pool.clone(), (*table).clone()).with_retry(retry.clone());
        let fresh = read_at.elapsed() < SNAPSHOT_REUSE;
        let snapshot = match snapshots[k].take().filter(|_| fresh) {
            Some(snap) => snap,
            None => manager.maintenance_snapshot(conn).await,
        };
        let result = match snapshot {
            Ok(snap) => manager.act(conn, snap, now, kind, opts.stop.as_ref()).await,
            Err(e) => Err(e),
        };
        // Not logged here: the report carries it, and who shows the report (the daemon's
        // log, the CLI's output) says it once.
        let (error, usage_error) = match result {
            Ok(a) => {
                acted.push((k, a));
                (None, false)
            }
            Err(e) => (Some(e.detail(&table.label())), e.is_usage()),
        };
        runs.push(TableRun {
            table: table.label(),
            started_at,
            seconds: clock.elapsed().as_secs_f64(),
            report: None,
            error,
            usage_error,
        });
    }
    // The state every run left, for the tables it changed, in one round trip.
    let changed: Vec<&TableConfig> = acted
        .iter()
        .filter(|(_, a)| a.changed())
        .map(|(k, _)| tables[*k])
        .collect();
    let mut after = if changed.is_empty() {
        Vec::new()
    } else {
        match catalog::read_tables(conn, &changed, Detail::WithoutSizes).await {
            Ok(all) => all
                .into_iter()
                .map(|r| Some(r.map_err(|e| e.to_string())))
                .collect(),
            Err(e) => changed.iter().map(|_| Some(Err(e.to_string()))).collect(),
        }
    }
    .into_iter();
    for (k, a) in acted {
        let state = if a.changed() {
            after.next().flatten()
        } else {
            None
        };
        runs[k].report = Some(a.finish(tables[k], state));
    }
    Ok(RunReport {
        now,
        dry_run: opts.dry_run,
        tables: runs,
    })
}

/// Records each table's part of a run in `partwarden_state` (created when missing), as the
/// daemon records its own: every replica's last-success metric then counts a run made with
/// `partwarden maintain`, and the alert that asked for it resolves.
/// Nothing on a hot standby (read-only; the run changed nothing there either).
pub async fn record_runs(conn: &mut sqlx::PgConnection, report: &RunReport) -> Result<(), Error> {
    let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut *conn)
        .await?;
    if standby {
        return Ok(());
    }
    crate::engine::state::ensure_table(conn).await?;
    let labels: Vec<String> = report.tables.iter().map(|t| t.table.clone()).collect();
    let recorded = crate::engine::state::recorded_successes(conn, &labels).await?;
    let runs: Vec<crate::engine::state::RunRecord> = report
        .tables
        .iter()
        .filter(|t| !crate::engine::state::already_recorded(t, recorded.get(&t.table)))
        .map(|t| crate::engine::state::RunRecord {
            table: t.table.clone(),
            success: t.succeeded(),
            at: t.started_at,
            run: serde_json::to_value(t).unwrap_or_default(),
        })
        .collect();
    crate::engine::state::record_all(conn, &runs).await
}
