//! New partitions: the default partition, and a range partition attached online with the
//! rows of its range moved out of the default partition in the same transaction.

use sqlx::{Connection, PgConnection};
use tracing::warn;

use super::{create_like_sql, db_message, exec, rls, Step, StepError};
use crate::apply::locks::{self, LockMode, LockRequest};
use crate::calendar::{sql_literal, PartitionBounds};

pub(super) async fn default_partition(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
) -> Result<String, StepError> {
    let n = &step.names;
    let rel = n.rel(partition);
    let mut tx = conn.begin().await?;
    exec(&mut tx, &create_like_sql(n, &rel, false)).await?;
    exec(
        &mut tx,
        &format!("ALTER TABLE {} ATTACH PARTITION {rel} DEFAULT", n.parent),
    )
    .await?;
    rls::sync(&mut tx, step, &rel).await?;
    tx.commit().await?;
    Ok("created and attached as DEFAULT".into())
}

/// Creates `partition` for `bounds` and attaches it.
///
/// With a default partition, an insert routes its row to a partition *before* it waits
/// for any lock on it: an insert of this range that started before the ATTACH commits has
/// chosen the default partition, and once the ATTACH commits the default partition's
/// constraint excludes the row (SQLSTATE 23514 at the insert), or, when no other lock
/// holds it back, its row lands there between the move and the ATTACH's scan (the ATTACH
/// fails). So writers are held before routing: a SHARE lock on the parent (it blocks
/// INSERT/UPDATE/DELETE through the parent, not reads) is taken once no write
/// transaction is open, and kept only while the rows move and the ATTACH commits.
pub(super) async fn partition(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
    bounds: &PartitionBounds,
) -> Result<String, StepError> {
    let n = &step.names;
    let rel = n.rel(partition);
    let (from, to) = (sql_literal(bounds.from), sql_literal(bounds.to));
    ensure_name_free(conn, step, partition, &rel).await?;
    let mut tx = conn.begin().await?;
    create_bounded(&mut tx, step, &rel, &from, &to, false).await?;

    let mut moved = 0i64;
    if let Some(default) = &step.snap.default_partition {
        let drel = n.rel(&default.name);
        moved = hold_writers_and_move(&mut tx, step, &drel, &rel, bounds, 0).await?;
    }

    attach(&mut tx, step, &rel, &from, &to).await?;
    // Rows are in before RLS is forced (the owner could not insert them afterwards).
    rls::sync(&mut tx, step, &rel).await?;
    crate::fault::point("create_before_commit").await;
    tx.commit().await?;
    if moved > 0 {
        analyze_after_move(conn, step, &rel).await;
    }
    Ok(if moved > 0 {
        format!("created and attached; moved {moved} row(s) from the default partition")
    } else {
        "created and attached".into()
    })
}

/// Fails when a relation already has the partition's name (a table detached earlier).
pub(super) async fn ensure_name_free(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
    rel: &str,
) -> Result<(), StepError> {
    let taken: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(rel)
        .fetch_one(&mut *conn)
        .await?;
    if taken {
        return Err(StepError::Fatal(format!(
            "a relation named {partition} already exists but is not a partition of {} (detached earlier?): \
             attach, rename or drop it so this range can get its partition",
            step.snap.label()
        )));
    }
    Ok(())
}

/// The standalone table `rel`, with a CHECK constraint matching `from`..`to`; with the
/// parent's indexes when `with_indexes` (a table loaded before it is attached: ATTACH
/// would otherwise build them under its locks).
pub(super) async fn create_bounded(
    tx: &mut PgConnection,
    step: &Step<'_>,
    rel: &str,
    from: &str,
    to: &str,
    with_indexes: bool,
) -> Result<(), StepError> {
    let col = &step.names.column;
    // The CHECK proves the bounds to ATTACH, which then skips scanning the new table.
    // Statement by statement, not batched: Citus forwards a DDL's whole query string to
    // the workers as one prepared statement, which may hold one command.
    exec(tx, &create_like_sql(&step.names, rel, with_indexes)).await?;
    exec(
        tx,
        &format!(
            "ALTER TABLE {rel} ADD CONSTRAINT partwarden_partition_bound \
             CHECK ({col} IS NOT NULL AND {col} >= '{from}' AND {col} < '{to}')"
        ),
    )
    .await?;
    if let Some(citus) = &step.snap.citus {
        // Distributed (colocated with the parent, as ATTACH requires) while empty: rows
        // moved or loaded into it then go to its shards. A table distributed with rows
        // in it keeps a hidden copy of them on the coordinator.
        sqlx::query("SELECT create_distributed_table($1, $2, colocate_with => $3)")
            .bind(rel)
            .bind(&citus.column)
            .bind(&step.names.parent)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Holds writers, then moves the range's rows out of the default partition `drel` into
/// `rel`, which holds `already` rows.
pub(super) async fn hold_writers_and_move(
    tx: &mut PgConnection,
    step: &Step<'_>,
    drel: &str,
    rel: &str,
    bounds: &PartitionBounds,
    already: i64,
) -> Result<i64, StepError> {
    // Writers first (parent, then default partition: the order inserts take them).
    locks::take(
        tx,
        &[
            LockRequest::table(step.names.parent.clone(), LockMode::Share),
            LockRequest::table(drel, LockMode::AccessExclusive),
        ],
        step.lock_wait,
    )
    .await?;
    crate::fault::point("create_before_move").await;
    move_rows(tx, step, drel, rel, bounds, already).await
}

/// `ATTACH PARTITION` for `from`..`to`, then the bound constraint it no longer needs.
pub(super) async fn attach(
    tx: &mut PgConnection,
    step: &Step<'_>,
    rel: &str,
    from: &str,
    to: &str,
) -> Result<(), StepError> {
    // Two statements, not one batch: see create_bounded (Citus).
    exec(
        tx,
        &format!(
            "ALTER TABLE {} ATTACH PARTITION {rel} FOR VALUES FROM ('{from}') TO ('{to}')",
            step.names.parent
        ),
    )
    .await?;
    exec(
        tx,
        &format!("ALTER TABLE {rel} DROP CONSTRAINT partwarden_partition_bound"),
    )
    .await?;
    Ok(())
}

/// Keeps the row estimates truthful after rows moved: the default partition's (a metric
/// and an alert) and the new partition's (unknown until analyzed). Best effort: the
/// partition is done; a failed ANALYZE only leaves an estimate stale.
pub(super) async fn analyze_after_move(conn: &mut PgConnection, step: &Step<'_>, rel: &str) {
    let default = step
        .snap
        .default_partition
        .as_ref()
        .map(|d| step.names.rel(&d.name));
    for r in default.iter().map(String::as_str).chain([rel]) {
        if let Err(e) = exec(conn, &format!("ANALYZE {r}")).await {
            warn!("ANALYZE {r}: {}", db_message(&e));
        }
    }
}

/// Moves the rows of `bounds` from the default partition `drel` into the new table `rel`
/// holding `already` rows (the caller holds ACCESS EXCLUSIVE on `drel`), counts checked.
async fn move_rows(
    tx: &mut PgConnection,
    step: &Step<'_>,
    drel: &str,
    rel: &str,
    bounds: &PartitionBounds,
    already: i64,
) -> Result<i64, StepError> {
    let col = &step.names.column;
    // FORCE ROW LEVEL SECURITY hides every row from the owner when no tenant is set. Lift
    // it for this transaction only: we hold ACCESS EXCLUSIVE on the default partition
    // until commit, so no other session sees it unforced.
    let forced: bool =
        sqlx::query_scalar("SELECT relforcerowsecurity FROM pg_class WHERE oid = to_regclass($1)")
            .bind(drel)
            .fetch_one(&mut *tx)
            .await?;
    if forced {
        exec(
            tx,
            &format!("ALTER TABLE {drel} NO FORCE ROW LEVEL SECURITY"),
        )
        .await?;
    }
    let cols = step.snap.columns.join(", ");
    let (deleted, inserted): (i64, i64) = sqlx::query_as(&format!(
        "WITH moved AS (DELETE FROM {drel} WHERE {col} >= $1 AND {col} < $2 RETURNING {cols}),
              ins AS (INSERT INTO {rel} ({cols}) SELECT {cols} FROM moved RETURNING 1)
         SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM ins)"
    ))
    .bind(bounds.from)
    .bind(bounds.to)
    .fetch_one(&mut *tx)
    .await?;
    let landed: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {rel}"))
        .fetch_one(&mut *tx)
        .await?;
    if deleted != inserted || already + inserted != landed {
        // Dropping the transaction rolls everything back: no row is lost.
        return Err(StepError::Fatal(format!(
            "row counts disagree while moving rows out of the default partition: {deleted} deleted, \
             {inserted} inserted, {landed} in the new partition (which held {already}); rolled back"
        )));
    }
    if forced {
        exec(tx, &format!("ALTER TABLE {drel} FORCE ROW LEVEL SECURITY")).await?;
    }
    Ok(inserted)
}
