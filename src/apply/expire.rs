//! Expiry: a partition past retention leaves the table with the parent's row-level
//! security and is dropped, kept, or moved to the archive schema — completely, or
//! recorded in `partwarden_journal` until a later run completes it.
//!
//! With a default partition PostgreSQL allows only a plain DETACH (ACCESS EXCLUSIVE on
//! the parent): locks taken politely, then DETACH and DROP / SET SCHEMA in one
//! transaction, so there is no moment at which the partition is detached and not yet
//! dropped or archived. Without one, `DETACH … CONCURRENTLY` commits on its own: the
//! expiry is journaled before it and finished (in one transaction with the journal
//! update) after it; a run killed in between leaves the entry for the next run. Citus
//! refuses `DETACH … CONCURRENTLY` on a distributed table: there the plain DETACH is used
//! with or without a default partition (docs/citus.md).
//!
//! Export mode journals the detached table "exporting" instead of dropping it; the export
//! (`export.rs`) then runs on the detached table alone and drops it only once the store
//! holds the rows, verified.

use sqlx::{Connection, PgConnection};

use super::{exec, rls, Step, StepError};
use crate::apply::journal;
use crate::apply::locks::{self, LockMode, LockRequest};
use crate::calendar::PartitionBounds;
use crate::catalog::Journaled;
use crate::config::RetentionMode;
use crate::ident::{quote_ident, Ident};

pub(super) async fn expire(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
    bounds: PartitionBounds,
    mode: RetentionMode,
) -> Result<String, StepError> {
    let rel = step.names.rel(partition);
    let oid = step.snap.find(partition).map(|p| p.oid).ok_or_else(|| {
        StepError::Fatal(format!(
            "{partition} is not a partition of {}",
            step.snap.label()
        ))
    })?;
    let what = Journaled::Expire {
        partition: partition.to_string(),
        oid,
        bounds,
        mode,
    };
    if mode == RetentionMode::Export {
        // Nothing is detached for a store that cannot take the rows.
        super::export::check_store(step).await?;
    }
    // A previous attempt's DETACH CONCURRENTLY may have got as far as "detach pending".
    let pending: Option<bool> = sqlx::query_scalar(
        "SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid = $1::bigint::oid AND i.inhparent = $2::bigint::oid",
    )
    .bind(oid)
    .bind(step.snap.oid)
    .fetch_optional(&mut *conn)
    .await?;
    match pending {
        // Detached already (by an earlier attempt, or a FinalizeDetach of this run).
        None => finish(conn, step, &what).await,
        Some(true) => {
            finalize_detach(conn, step, partition).await?;
            journal::put(conn, &step.label(), &what, "detaching").await?;
            finish(conn, step, &what).await
        }
        // Citus refuses DETACH … CONCURRENTLY on a distributed table ("currently
        // unsupported"): there the plain DETACH below, under the same bounded lock wait.
        Some(false) if step.snap.default_partition.is_none() && step.snap.citus.is_none() => {
            detach_concurrently(conn, step, &rel, &what).await?;
            crate::fault::point("expire_after_detach").await;
            finish(conn, step, &what).await
        }
        Some(false) => detach_and_finish(conn, step, &rel, &what).await,
    }
}

/// Without a default partition: `what` journaled as "detaching" (with the partition's
/// RLS repaired) in one transaction, then `DETACH … CONCURRENTLY`, which commits on its
/// own; the caller finishes the expiry after it.
async fn detach_concurrently(
    conn: &mut PgConnection,
    step: &Step<'_>,
    rel: &str,
    what: &Journaled,
) -> Result<(), StepError> {
    {
        let mut tx = conn.begin().await?;
        locks::take(
            &mut tx,
            &[LockRequest::table(rel, LockMode::AccessExclusive)],
            step.lock_wait,
        )
        .await?;
        rls::sync(&mut tx, step, rel).await?;
        journal::put(&mut tx, &step.label(), what, "detaching").await?;
        tx.commit().await?;
    }
    // Its second phase takes ACCESS EXCLUSIVE on the partition: not behind a
    // long reader of it.
    locks::check_clear(
        conn,
        &[LockRequest::table(rel, LockMode::AccessExclusive)],
        step.lock_wait,
    )
    .await?;
    // Not allowed in a transaction block: runs on its own.
    exec(
        conn,
        &format!(
            "ALTER TABLE {} DETACH PARTITION {rel} CONCURRENTLY",
            step.names.parent
        ),
    )
    .await?;
    Ok(())
}

/// With a default partition (or on Citus): a plain DETACH and the rest of the expiry in
/// one transaction, the parent, the default partition and the partition locked in that
/// order.
async fn detach_and_finish(
    conn: &mut PgConnection,
    step: &Step<'_>,
    rel: &str,
    what: &Journaled,
) -> Result<String, StepError> {
    let n = &step.names;
    let mut order = vec![LockRequest::table(
        n.parent.clone(),
        LockMode::AccessExclusive,
    )];
    if let Some(d) = &step.snap.default_partition {
        order.push(LockRequest::table(
            n.rel(&d.name),
            LockMode::AccessExclusive,
        ));
    }
    order.push(LockRequest::table(rel, LockMode::AccessExclusive));
    let mut tx = conn.begin().await?;
    locks::take(&mut tx, &order, step.lock_wait).await?;
    rls::sync(&mut tx, step, rel).await?;
    exec(
        &mut tx,
        &format!("ALTER TABLE {} DETACH PARTITION {rel}", n.parent),
    )
    .await?;
    crate::fault::point("expire_after_detach").await;
    let done = finish_in(&mut tx, step, what, rel).await?;
    tx.commit().await?;
    then_export(conn, step, what, done).await
}

/// An expiry in export mode is journaled "exporting" by [`finish_in`]; the export runs
/// after that commits, outside the locks on the parent.
async fn then_export(
    conn: &mut PgConnection,
    step: &Step<'_>,
    what: &Journaled,
    done: String,
) -> Result<String, StepError> {
    match what {
        Journaled::Expire {
            mode: RetentionMode::Export,
            ..
        } => Ok(format!(
            "{done}; {}",
            super::export::export_and_drop(conn, step, what).await?
        )),
        _ => Ok(done),
    }
}

/// Finishes a detach left "detach pending". `… FINALIZE` waits for older snapshots and
/// takes ACCESS EXCLUSIVE on the partition: only tried when no long holder of the
/// partition is in the way, under the session's `lock_timeout`.
pub(super) async fn finalize_detach(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
) -> Result<String, StepError> {
    let rel = step.names.rel(partition);
    locks::check_clear(
        conn,
        &[LockRequest::table(rel.clone(), LockMode::AccessExclusive)],
        step.lock_wait,
    )
    .await?;
    exec(
        conn,
        &format!(
            "ALTER TABLE {} DETACH PARTITION {rel} FINALIZE",
            step.names.parent
        ),
    )
    .await?;
    // The detached table stays under partwarden's watch: past retention it is an expiry
    // to finish (by the expiry planned after this, or a later run); otherwise it is kept
    // as a retired table (reported, RLS kept the parent's).
    let Some(bounds) = step.snap.find(partition).and_then(|p| p.bounds) else {
        return Ok("detach finalized".into());
    };
    let oid = step.snap.find(partition).map(|p| p.oid).unwrap_or_default();
    let expiring = bounds.to <= step.cutoff;
    let what = Journaled::Expire {
        partition: partition.to_string(),
        oid,
        bounds,
        mode: if expiring {
            step.table.retention_mode
        } else {
            RetentionMode::Detach
        },
    };
    journal::put(
        conn,
        &step.label(),
        &what,
        if expiring { "detaching" } else { "retired" },
    )
    .await?;
    Ok(if expiring {
        "detach finalized; its expiry follows".into()
    } else {
        "detach finalized; the detached table is kept and watched".into()
    })
}

/// Completes the expiry of a detached partition (journaled), in its own transaction.
pub(super) async fn finish(
    conn: &mut PgConnection,
    step: &Step<'_>,
    what: &Journaled,
) -> Result<String, StepError> {
    let Journaled::Expire { partition, oid, .. } = what else {
        return Err(StepError::Fatal("not an expiry".into()));
    };
    let mut tx = conn.begin().await?;
    let Some((schema, name)) = detached_location(&mut tx, *oid, partition).await? else {
        journal::remove(&mut tx, &step.label(), what.kind(), partition).await?;
        tx.commit().await?;
        return Ok(format!("{partition} no longer exists; nothing left to do"));
    };
    let rel = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
    locks::take(
        &mut tx,
        &[LockRequest::table(rel.clone(), LockMode::AccessExclusive)],
        step.lock_wait,
    )
    .await?;
    let done = finish_in(&mut tx, step, what, &rel).await?;
    tx.commit().await?;
    then_export(conn, step, what, done).await
}

/// Where the detached table of an expiry is now (schema, name), found by oid and name;
/// `None` when it no longer exists.
pub(super) async fn detached_location(
    conn: &mut PgConnection,
    oid: i64,
    partition: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = $1::bigint::oid AND c.relname = $2",
    )
    .bind(oid)
    .bind(partition)
    .fetch_optional(&mut *conn)
    .await
}

/// The last step of an expiry, inside the caller's transaction (which holds ACCESS
/// EXCLUSIVE on the detached table `rel`): RLS, then drop / keep / archive, and the
/// journal entry removed or marked retired in the same transaction.
async fn finish_in(
    tx: &mut PgConnection,
    step: &Step<'_>,
    what: &Journaled,
    rel: &str,
) -> Result<String, StepError> {
    let Journaled::Expire {
        partition, mode, ..
    } = what
    else {
        return Err(StepError::Fatal("not an expiry".into()));
    };
    let label = step.label();
    // The table keeps the row-level security it leaves with: the parent's.
    rls::sync(tx, step, rel).await?;
    match mode {
        RetentionMode::Drop => {
            exec(tx, &format!("DROP TABLE {rel}")).await?;
            journal::remove(tx, &label, what.kind(), partition).await?;
            Ok("detached and dropped".into())
        }
        RetentionMode::Detach => {
            journal::put(tx, &label, what, "retired").await?;
            Ok(
                "detached; the table is kept (and watched: row-level security stays the parent's)"
                    .into(),
            )
        }
        RetentionMode::Archive => {
            let archive = &step.table.archive_schema;
            move_to_archive(tx, rel, archive).await?;
            journal::put(tx, &label, what, "retired").await?;
            Ok(format!("detached and moved to schema {archive}"))
        }
        RetentionMode::Export => {
            journal::put(tx, &label, what, "exporting").await?;
            Ok("detached".into())
        }
    }
}

/// Moves the detached table `rel` into schema `archive`, created first when missing
/// (inside the caller's transaction, which holds ACCESS EXCLUSIVE on `rel`).
async fn move_to_archive(
    tx: &mut PgConnection,
    rel: &str,
    archive: &Ident,
) -> Result<(), StepError> {
    // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
    // is there: a pre-created archive schema must be enough.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(archive.as_str())
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        exec(tx, &format!("CREATE SCHEMA {}", archive.quoted())).await?;
    }
    let in_archive: bool = sqlx::query_scalar(
        "SELECT c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2)
                   FROM pg_class c WHERE c.oid = to_regclass($1)",
    )
    .bind(rel)
    .bind(archive.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if !in_archive {
        exec(
            tx,
            &format!("ALTER TABLE {rel} SET SCHEMA {}", archive.quoted()),
        )
        .await?;
    }
    Ok(())
}
