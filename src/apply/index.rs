//! A partition's copy of a parent index: built `CONCURRENTLY` (writes continue), then
//! attached to the parent index. Dropping indexes (INVALID or superseded ones).

use sqlx::{Connection, PgConnection};

use super::{exec, Step, StepError};
use crate::apply::locks::{self, LockRequest};
use crate::catalog::ParentIndex;
use crate::ident::quote_ident;

pub(super) async fn build(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
    parent_index: &str,
    index: &str,
) -> Result<String, StepError> {
    let n = &step.names;
    let (pi, using) = parent_definition(step, parent_index)?;
    let rel = n.rel(partition);
    let idx = n.rel(index);
    // A previous attempt may have left the index behind, valid (then only attach it) or
    // INVALID (drop it first: REINDEX cannot fix a half-built index that was never valid
    // any better than a fresh build).
    let existing: Option<bool> = sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1) AND i.indrelid = to_regclass($2)",
    )
    .bind(&idx)
    .bind(&rel)
    .fetch_optional(&mut *conn)
    .await?;
    if existing == Some(false) {
        exec(conn, &format!("DROP INDEX CONCURRENTLY IF EXISTS {idx}")).await?;
    }
    if existing != Some(true) {
        let unique = if pi.is_unique { "UNIQUE " } else { "" };
        exec(
            conn,
            &format!(
                "CREATE {unique}INDEX CONCURRENTLY {} ON {rel} USING {using}",
                quote_ident(index)
            ),
        )
        .await?;
    }
    attach(conn, step, parent_index, &idx).await?;
    Ok("built concurrently and attached".into())
}

/// The parent index `parent_index`, and what follows USING in its definition.
fn parent_definition<'s>(
    step: &Step<'s>,
    parent_index: &str,
) -> Result<(&'s ParentIndex, &'s str), StepError> {
    let pi = step
        .snap
        .parent_indexes
        .iter()
        .find(|i| i.name == parent_index)
        .ok_or_else(|| StepError::Fatal(format!("parent index {parent_index} is gone")))?;
    // `CREATE INDEX name ON ONLY parent USING …`: keep what follows USING.
    let using = pi
        .definition
        .split_once(" USING ")
        .map(|(_, rest)| rest)
        .ok_or_else(|| {
            StepError::Fatal(format!(
                "cannot read the definition of {parent_index}: {}",
                pi.definition
            ))
        })?;
    Ok((pi, using))
}

/// Attaches the partition's index `idx` to `parent_index`, in its own transaction.
async fn attach(
    conn: &mut PgConnection,
    step: &Step<'_>,
    parent_index: &str,
    idx: &str,
) -> Result<(), StepError> {
    // ATTACH takes ACCESS EXCLUSIVE on the partition's index, which every reader and
    // writer of the partition locks too: not behind a long one.
    let mut tx = conn.begin().await?;
    locks::take(&mut tx, &[LockRequest::index(idx)], step.lock_wait).await?;
    exec(
        &mut tx,
        &format!(
            "ALTER INDEX {} ATTACH PARTITION {idx}",
            step.names.rel(parent_index)
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `REINDEX … CONCURRENTLY` of an INVALID index.
pub(super) async fn repair(
    conn: &mut PgConnection,
    step: &Step<'_>,
    index: &str,
) -> Result<String, StepError> {
    exec(
        conn,
        &format!("REINDEX INDEX CONCURRENTLY {}", step.names.rel(index)),
    )
    .await?;
    Ok("rebuilt concurrently".into())
}

/// `DROP INDEX CONCURRENTLY`, and the journal entry of a vector build of that index.
pub(super) async fn drop(
    conn: &mut PgConnection,
    step: &Step<'_>,
    index: &str,
) -> Result<String, StepError> {
    exec(
        conn,
        &format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            step.names.rel(index)
        ),
    )
    .await?;
    crate::apply::journal::remove(conn, &step.label(), "vector_build", index).await?;
    Ok("dropped concurrently".into())
}
