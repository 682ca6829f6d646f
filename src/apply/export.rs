//! Export mode's last step: the detached table (journaled "exporting") is written to the
//! object store, read back, and dropped — in one transaction that holds ACCESS EXCLUSIVE
//! on the detached table (no one else uses it: it left the parent) from before its rows
//! are read until the drop commits, so the rows exported are the rows dropped.
//!
//! Whatever fails, or kills the process, before that commit leaves the table, its journal
//! entry and no `partwarden_exports` row: the next run exports it again under a new run id
//! (deleting what the interrupted run left in the store first). A manifest is written only
//! after every object it names is complete, so none claims more than the store holds.

use std::time::Instant;

use sqlx::{Connection, PgConnection};

use super::{exec, Step, StepError};
use crate::apply::journal;
use crate::apply::locks::{self, LockMode, LockRequest};
use crate::archive::export::{delete_unrecorded_runs, export_partition, ExportRequest};
use crate::archive::{record, Store};
use crate::catalog::Journaled;
use crate::ident::quote_ident;

/// Row-level security must not filter what is exported (FORCE ROW LEVEL SECURITY hides
/// every row from the owner when no tenant is set): `row_security = off` makes any query
/// that a policy would filter fail instead, and FORCE is lifted for this transaction only
/// (the caller holds ACCESS EXCLUSIVE: no other session sees the table unforced; a
/// rollback restores it).
///
/// The export's COPY reads a table no application uses, for as long as the partition's
/// size needs: `statement_timeout` (a bound for DDL that could block the application) and
/// `idle_in_transaction_session_timeout` (the transaction waits while the store takes the
/// objects and they are read back) are lifted for it; the store's own request timeouts
/// end a hung upload.
async fn see_every_row(tx: &mut PgConnection, rel: &str) -> Result<(), StepError> {
    exec(
        tx,
        "SET LOCAL row_security = off; SET LOCAL statement_timeout = 0; \
         SET LOCAL idle_in_transaction_session_timeout = 0",
    )
    .await?;
    let forced: bool =
        sqlx::query_scalar("SELECT relforcerowsecurity FROM pg_class WHERE oid = to_regclass($1)")
            .bind(rel)
            .fetch_one(&mut *tx)
            .await?;
    if forced {
        exec(
            tx,
            &format!("ALTER TABLE {rel} NO FORCE ROW LEVEL SECURITY"),
        )
        .await?;
    }
    Ok(())
}

/// What one export wrote, for the outcome and the metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportSummary {
    pub run_id: String,
    pub rows: u64,
    pub parquet_bytes: u64,
    pub source_bytes: i64,
    pub seconds: f64,
    pub manifest: String,
}

fn store_of(step: &Step<'_>) -> Result<Store, StepError> {
    let Some(config) = &step.table.export else {
        return Err(StepError::Fatal(format!(
            "retention_mode is export but no store is configured for {} ([export] or [tables.export] url)",
            step.label()
        )));
    };
    Store::open(config, &config.url).map_err(|e| StepError::Fatal(e.to_string()))
}

/// The store takes a write: checked before a partition is detached for export.
pub(super) async fn check_store(step: &Step<'_>) -> Result<(), StepError> {
    let store = store_of(step)?;
    store
        .check_writable()
        .await
        .map_err(|e| StepError::Fatal(format!("{e}; nothing was detached")))
}

pub(super) async fn export_and_drop(
    conn: &mut PgConnection,
    step: &Step<'_>,
    what: &Journaled,
) -> Result<String, StepError> {
    let Journaled::Expire {
        partition,
        oid,
        bounds,
        ..
    } = what
    else {
        return Err(StepError::Fatal("not an expiry".into()));
    };
    let started = Instant::now();
    let store = store_of(step)?;
    let label = step.label();
    let fatal = |e: &dyn std::fmt::Display| {
        StepError::Fatal(format!("{e}; {partition} stays in the database (detached) and is exported again by the next run"))
    };
    record::ensure_table(conn).await?;
    let recorded = record::recorded_runs(conn, &label, partition).await?;
    delete_unrecorded_runs(&store, &label, partition, bounds, &recorded)
        .await
        .map_err(|e| fatal(&e))?;

    let mut tx = conn.begin().await?;
    let location = super::expire::detached_location(&mut tx, *oid, partition).await?;
    let Some((schema, name)) = location else {
        journal::remove(&mut tx, &label, what.kind(), partition).await?;
        tx.commit().await?;
        return Ok(format!(
            "{partition} no longer exists; nothing left to export"
        ));
    };
    let rel = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
    locks::take(
        &mut tx,
        &[LockRequest::table(rel.clone(), LockMode::AccessExclusive)],
        step.lock_wait,
    )
    .await?;
    see_every_row(&mut tx, &rel).await?;
    let config = step
        .table
        .export
        .as_ref()
        .map(|c| c.zstd_level)
        .unwrap_or(3);
    let req = ExportRequest {
        store: &store,
        table: &label,
        partition,
        bounds: *bounds,
        relation: &rel,
        zstd_level: config,
    };
    let bulk = crate::memory::BulkWork::begin();
    let exported = export_partition(&mut tx, &req).await.map_err(|e| match e {
        crate::archive::ExportError::Database(db) => StepError::from(db),
        other => fatal(&other),
    })?;
    // The rows the table holds are the rows the store holds: counted again, apart from
    // the stream the export read.
    let held: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {rel}"))
        .fetch_one(&mut *tx)
        .await?;
    if u64::try_from(held).ok() != Some(exported.manifest.rows) {
        return Err(fatal(&format!(
            "{rel} holds {held} row(s) but {} were exported; rolled back, nothing dropped",
            exported.manifest.rows
        )));
    }
    drop(bulk);
    crate::fault::point("export_before_drop").await;
    exec(&mut tx, &format!("DROP TABLE {rel}")).await?;
    journal::remove(&mut tx, &label, what.kind(), partition).await?;
    let seconds = started.elapsed().as_secs_f64();
    record::insert(&mut tx, &exported, seconds).await?;
    tx.commit().await?;
    let m = &exported.manifest;
    let summary = ExportSummary {
        run_id: m.run_id.clone(),
        rows: m.rows,
        parquet_bytes: m.bytes,
        source_bytes: m.source_bytes,
        seconds,
        manifest: store.url_of(&exported.manifest_path),
    };
    let text = format!(
        "exported {} row(s) as {} Parquet object(s) ({} bytes) to {}, verified, and dropped",
        m.rows,
        m.objects.len(),
        m.bytes,
        summary.manifest
    );
    step.record_export(summary);
    Ok(text)
}
