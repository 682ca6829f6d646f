//! `partwarden restore`: an export loaded back into a new partition, online.
//!
//! The export is read back and checked first (manifest and objects, as before its drop).
//! Then, in one transaction: a standalone table `LIKE` the parent with its indexes and a
//! CHECK of the bounds, the rows loaded by binary COPY and read out again (the same bytes
//! the export read, on every column), the range's rows moved out of the default partition
//! and `ATTACH` (as a new partition is attached, `create.rs`), the parent's row-level
//! security, the journal's hold (the next runs do not expire it again before the hold
//! ends) and the export's row marked restored. Until that commits nothing is visible;
//! a failure leaves the database as it was and the export in the store.

use object_store::path::Path;
use sqlx::{Connection, PgConnection};
use url::Url;

use super::create::{
    analyze_after_move, attach, create_bounded, ensure_name_free, hold_writers_and_move,
};
use super::{journal, rls, Step, StepError};
use crate::archive::{record, restore, verify::verify, Store};
use crate::calendar::{sql_literal, PartitionBounds};
use crate::catalog::Journaled;

pub(super) async fn restore(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
    bounds: &PartitionBounds,
    run_id: &str,
    hold_until: chrono::DateTime<chrono::Utc>,
) -> Result<String, StepError> {
    let fatal = |m: String| StepError::Fatal(m);
    let label = step.label();
    let row = record::find(conn, &label, partition, Some(run_id))
        .await?
        .ok_or_else(|| {
            fatal(format!(
                "partwarden_exports records no export {run_id} of {partition}"
            ))
        })?;
    let config = step.table.export.as_ref().ok_or_else(|| {
        fatal(format!(
            "no export store is configured for {label} ([export] or [tables.export]): its options are needed to read {}",
            row.store_url
        ))
    })?;
    let url = Url::parse(&row.store_url)
        .map_err(|e| fatal(format!("recorded store URL {}: {e}", row.store_url)))?;
    if url.scheme() != config.url.scheme() {
        return Err(fatal(format!(
            "the export is in {} but the configured store is {}: configure a store of the same kind to restore it",
            row.store_url, config.url
        )));
    }
    let store = Store::open(config, &url).map_err(|e| fatal(e.to_string()))?;
    let manifest = verify(
        &store,
        &Path::from(row.manifest_path.as_str()),
        &row.manifest_sha256,
    )
    .await
    .map_err(|e| fatal(format!("{e}; nothing was restored")))?;
    if let Some(p) = step.snap.partitions.iter().find(|p| {
        p.bounds
            .is_some_and(|b| b.from < bounds.to && bounds.from < b.to)
    }) {
        return Err(fatal(format!(
            "{} {} overlaps the export's range {bounds}: detach or drop it first",
            p.name,
            p.bounds.map(|b| b.to_string()).unwrap_or_default()
        )));
    }
    let rel = step.names.rel(partition);
    ensure_name_free(conn, step, partition, &rel).await?;
    let (from, to) = (sql_literal(bounds.from), sql_literal(bounds.to));

    let mut tx = conn.begin().await?;
    // Nothing a policy would filter is read back silently short (the table gets the
    // parent's row-level security only at the end).
    super::exec(&mut tx, "SET LOCAL row_security = off").await?;
    create_bounded(&mut tx, step, &rel, &from, &to, true).await?;
    let bulk = crate::memory::BulkWork::begin();
    let loaded = restore::load(&mut tx, &store, &manifest, &rel)
        .await
        .map_err(|e| fatal(format!("{e}; rolled back, nothing was restored")))?;
    let rows = loaded.rows;
    let back = restore::read_back(&mut tx, &rel, &manifest)
        .await
        .map_err(|e| fatal(e.to_string()))?;
    if step.snap.citus.is_some() {
        // Citus sends a distributed table's rows in the order its shards answer: the same
        // rows, compared as a set (each row's bytes).
        if back.rows != rows || back.row_set != loaded.row_set {
            return Err(fatal(format!(
                "the restored rows read back as {} row(s) with row-set digest {}, the exported ones \
                 were {rows} with {}; rolled back",
                back.rows, back.row_set, loaded.row_set
            )));
        }
    } else if back.sha256 != manifest.copy_sha256 {
        return Err(fatal(format!(
            "the restored rows read back with SHA-256 {}, the exported ones had {}; rolled back",
            back.sha256, manifest.copy_sha256
        )));
    }
    drop(bulk);
    crate::fault::point("restore_before_attach").await;
    let mut moved = 0;
    if let Some(default) = &step.snap.default_partition {
        let drel = step.names.rel(&default.name);
        let already = i64::try_from(rows).unwrap_or(i64::MAX);
        moved = hold_writers_and_move(&mut tx, step, &drel, &rel, bounds, already).await?;
    }
    attach(&mut tx, step, &rel, &from, &to).await?;
    rls::sync(&mut tx, step, &rel).await?;
    let hold = Journaled::Hold {
        partition: partition.to_string(),
        until: hold_until,
    };
    journal::put(&mut tx, &label, &hold, "held").await?;
    record::mark_restored(&mut tx, &label, partition, run_id).await?;
    tx.commit().await?;
    analyze_after_move(conn, step, &rel).await;
    Ok(format!(
        "restored {rows} row(s) from {} (read back byte for byte){}; attached with the parent's indexes and row-level security; held from expiry until {}",
        store.url_of(&Path::from(row.manifest_path.as_str())),
        if moved > 0 {
            format!(", and moved {moved} row(s) of its range from the default partition")
        } else {
            String::new()
        },
        sql_literal(hold_until)
    ))
}
