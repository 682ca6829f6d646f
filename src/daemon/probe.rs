//! The probe (optional, `[probe]`): a read-only date-range query timed into a histogram,
//! never while maintenance runs (nor while the database is unreachable).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;
use tokio::sync::watch;
use tracing::warn;

use super::shared::Shared;
use crate::config::{ProbeConfig, TableConfig};
use crate::engine::db;

pub(super) async fn probe_loop(
    shared: Arc<Shared>,
    pool: PgPool,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = shared.config.probe.clone();
    let tenant = cfg
        .tenant_id
        .clone()
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval) => {}
            _ = shutdown.changed() => return,
        }
        if shared.running.load(Ordering::Relaxed) || !shared.db_up() {
            continue;
        }
        // A configured query names its own table(s): it is timed once, under the first
        // table's label.
        let tables: Vec<_> = match &cfg.query {
            Some(_) => shared.config.tables.iter().take(1).collect(),
            None => shared.config.tables.iter().collect(),
        };
        for table in tables {
            probe_table(&shared, &pool, &cfg, &tenant, table).await;
        }
    }
}

async fn probe_table(
    shared: &Shared,
    pool: &PgPool,
    cfg: &ProbeConfig,
    tenant: &str,
    table: &TableConfig,
) {
    let sql = cfg
        .query
        .clone()
        .unwrap_or_else(|| default_probe_sql(table));
    let started = Instant::now();
    let result = run_probe(pool, cfg, tenant, &sql).await;
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => shared.metrics.observe_probe(&table.label(), secs),
        Err(e) => {
            // A timeout is a very slow query: record it at the timeout.
            warn!(table = %table.label(), "probe query: {e}");
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("57014") {
                shared.metrics.observe_probe(&table.label(), secs);
            }
        }
    }
}

/// The probe in a read-only transaction, as the tenant (RLS), cut at the statement
/// timeout, and rolled back.
async fn run_probe(
    pool: &PgPool,
    cfg: &ProbeConfig,
    tenant: &str,
    sql: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, true), set_config('app.current_tenant_id', $2, true)",
    )
    .bind(db::pg_millis(cfg.statement_timeout))
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    let q = sqlx::query(sql);
    let q = if cfg.query.is_none() {
        q.bind(tenant)
    } else {
        q
    };
    q.fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    Ok(())
}

/// The default probe: one tenant's events of the last 7 days, aggregated — what a
/// dashboard does, and what partition pruning and the (tenant, time) index must keep fast.
fn default_probe_sql(table: &TableConfig) -> String {
    format!(
        "SELECT count(*), count(DISTINCT event_name) FROM {} WHERE tenant_id = $1::uuid AND {} >= now() - interval '7 days'",
        table.qualified_name(),
        table.column.quoted()
    )
}
