//! Statistics: every `stats_interval` (a second after each failed attempt while the
//! database is unreachable, so readiness follows it closely) a catalog snapshot per table
//! refreshes the gauges and the tables `/status` shows. While the database is unreachable
//! each attempt is a direct connection, whose error is the reason `/readyz`, `/status` and
//! the log give.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tracing::warn;

use super::packed::PackedJson;
use super::shared::{locked, Shared};
use crate::catalog::{self, TableSnapshot};
use crate::config::TableConfig;
use crate::engine::{db, state};
use crate::plan::health;
use crate::telemetry::metrics::TableGauges;

/// Refreshes the catalog-derived gauges; every second while the database is down.
pub(super) async fn stats_loop(
    shared: Arc<Shared>,
    pool: PgPool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state_table_ready = false;
    let mut reported = Reported::default();
    loop {
        let up = refresh_stats(&shared, &pool, &mut state_table_ready, &mut reported).await;
        crate::memory::release_freed();
        let wait = if up {
            shared.config.schedule.stats_interval
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.refresh.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The error each table's statistics last failed with, as logged: a table that stays
/// missing or misshapen is logged when its error appears or changes, not at every refresh.
type Reported = HashMap<String, String>;

/// One refresh of every table; returns whether the database answered. A database error
/// ends the refresh there (the database is down for every table); an error about one
/// table (missing, not partitioned…) only clears that table's gauges.
async fn refresh_stats(
    shared: &Shared,
    pool: &PgPool,
    state_table_ready: &mut bool,
    reported: &mut Reported,
) -> bool {
    let mut conn = match acquire_for_health(shared, pool).await {
        Ok(c) => c,
        Err(Unusable::Unreachable(reason)) => {
            shared.set_db_down(reason);
            return false;
        }
        Err(Unusable::Unsupported(reason)) => {
            shared.set_db_unsupported(reason);
            return false;
        }
    };
    let now = Utc::now();
    let started = std::time::Instant::now();
    for table in &shared.config.tables {
        if !refresh_table(shared, &mut conn, table, now, reported).await {
            return false;
        }
        // The table's snapshot, with sizes, is freed now; handed back at once, a refresh
        // holds one table's worth at a time (+10 MiB over a refresh at 30,000 partitions
        // otherwise).
        crate::memory::release_freed();
    }
    shared
        .metrics
        .set_refresh_seconds(started.elapsed().as_secs_f64());
    refresh_last_successes(shared, &mut conn, state_table_ready).await;
    shared.metrics.publish();
    shared.set_db_up();
    true
}

/// Reads one table into its gauges and its `/status` entry; false when the database
/// failed.
async fn refresh_table(
    shared: &Shared,
    conn: &mut PgConnection,
    table: &TableConfig,
    now: DateTime<Utc>,
    reported: &mut Reported,
) -> bool {
    let label = table.label();
    match catalog::read_table(conn, table).await {
        Ok(snap) => {
            reported.remove(&label);
            shared
                .metrics
                .set_table(&label, gauges(shared, table, &snap, now));
            let status = table_status(table, &snap, now);
            store_status(shared, label, status);
            true
        }
        Err(crate::error::Error::Database(e)) => {
            shared.set_db_down(format!("statistics of {label}: {e}"));
            false
        }
        Err(e) => {
            let e = e.detail(&label);
            if reported.get(&label) != Some(&e) {
                warn!(table = %label, "statistics: {e}");
                reported.insert(label.clone(), e.clone());
            }
            shared.metrics.clear_table(&label);
            let status = PackedJson::pack(&serde_json::json!({ "table": label, "error": e }));
            store_status(shared, label, status);
            true
        }
    }
}

/// One table's `/status` entry, which the page at `/` is drawn from: the keys
/// `status --json` gives them the same meaning.
fn gauges(
    shared: &Shared,
    table: &TableConfig,
    snap: &TableSnapshot,
    now: DateTime<Utc>,
) -> TableGauges {
    let g = TableGauges::from_snapshot(table, snap, now);
    if shared.config.http.per_partition_metrics {
        g
    } else {
        g.per_table_only()
    }
}

/// Keeps a table's packed `/status` entry; one that could not be packed is dropped (the
/// table then shows no entry) and said in the log.
fn store_status(shared: &Shared, label: String, status: std::io::Result<PackedJson>) {
    match status {
        Ok(packed) => {
            locked(&shared.tables_status).insert(label, packed);
        }
        Err(e) => {
            warn!(table = %label, "statistics: the /status entry could not be packed: {e}");
            locked(&shared.tables_status).remove(&label);
        }
    }
}

fn table_status(
    table: &TableConfig,
    snap: &TableSnapshot,
    now: DateTime<Utc>,
) -> std::io::Result<PackedJson> {
    let coverage = health::coverage(snap, now);
    PackedJson::pack(&TableStatus {
        table: table.label(),
        interval: &table.interval,
        premake: table.premake,
        retention: table.retention.to_string(),
        retention_cutoff: table.retention.cutoff(now),
        partitions: health::all_stats(snap),
        future_partitions: coverage.future_partitions,
        covered_until: coverage.covered_until,
        default_partition_rows: snap.default_partition.as_ref().map(|d| d.rows()),
        estimated_rows: snap.rows_estimate(),
        read_at: now,
    })
}

/// One table's `/status` entry, which the page at `/` is drawn from: the keys
/// `status --json` gives them the same meaning.
#[derive(Serialize)]
struct TableStatus<'a> {
    table: String,
    interval: &'a crate::calendar::Interval,
    premake: u32,
    retention: String,
    retention_cutoff: DateTime<Utc>,
    partitions: Vec<health::PartitionStats>,
    future_partitions: usize,
    covered_until: Option<DateTime<Utc>>,
    default_partition_rows: Option<u64>,
    estimated_rows: u64,
    read_at: DateTime<Utc>,
}

/// Last successes recorded by any replica, so a restart or a failover keeps them.
async fn refresh_last_successes(
    shared: &Shared,
    conn: &mut PgConnection,
    state_table_ready: &mut bool,
) {
    if !*state_table_ready {
        match state::ensure_table(conn).await {
            Ok(()) => *state_table_ready = true,
            Err(e) => warn!("state table partwarden_state: {e}"),
        }
    }
    if *state_table_ready {
        if let Ok(map) = state::last_successes(conn).await {
            for (table, at) in map {
                if shared.config.tables.iter().any(|t| t.label() == table) {
                    shared.metrics.set_last_success(&table, at);
                }
            }
        }
    }
}

/// Why [`acquire_for_health`] got no connection, in words for the log and `/readyz`.
enum Unusable {
    Unreachable(String),
    /// A server older than partwarden supports.
    Unsupported(String),
}

/// A pooled connection. While the database is not known to be up, a direct connection
/// comes first: the pool would retry a refused connection for `connect_timeout` and then
/// say only "pool timed out", where the direct one fails at once and says why (wrong
/// password, connection refused, unknown host), and checks the server's version. Once it
/// got in, so does the pool.
async fn acquire_for_health(
    shared: &Shared,
    pool: &PgPool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, Unusable> {
    if !shared.db_up() {
        let timeout = shared.config.database.connect_timeout;
        let probe = db::connect_once(&pool.connect_options(), timeout)
            .await
            .map_err(|e| match e {
                crate::error::Error::UnsupportedServer { .. } => {
                    Unusable::Unsupported(e.to_string())
                }
                e => Unusable::Unreachable(e.to_string()),
            })?;
        let _ = sqlx::Connection::close(probe).await;
    }
    pool.acquire()
        .await
        .map_err(|e| Unusable::Unreachable(format!("{}: {e}", db::target(&pool.connect_options()))))
}
