//! A partition's pgvector index: built concurrently (the partition stays readable and
//! writable), its build record written in its comment, and only then the index it
//! replaces dropped, so the partition is never without a usable index.
//!
//! The build record is journaled before the build starts: `CREATE INDEX CONCURRENTLY`
//! commits on its own, and a run killed after it (or an orphaned backend that finished
//! it) would otherwise leave an index that no later run recognises as partwarden's.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tracing::{info, warn};

use super::{exec, Step, StepError};
use crate::apply::journal;
use crate::catalog::Journaled;
use crate::config::{VectorIndexPolicy, VectorMethod};
use crate::ident::quote_ident;
use crate::plan::Action;

pub(super) async fn build(
    conn: &mut PgConnection,
    step: &Step<'_>,
    action: &Action,
) -> Result<String, StepError> {
    let Action::BuildVectorIndex {
        partition,
        index,
        method,
        lists,
        rows,
        vectors,
        closed,
        generation,
        replaces,
    } = action
    else {
        return Err(StepError::Fatal("not a vector index build".into()));
    };
    let n = &step.names;
    let (policy, with, mwm) = settings(conn, step, *method, *lists, *vectors).await?;
    let rel = n.rel(partition);
    let idx = n.rel(index);
    let mut record = crate::plan::vector::BuildRecord {
        method: *method,
        lists: *lists,
        rows: *rows,
        vectors: Some(*vectors),
        closed: *closed,
        generation: *generation,
    };
    let existing = drop_if_invalid(conn, &idx).await?;
    let mut notices = Vec::new();
    if existing != Some(true) {
        let journaled = Journaled::VectorBuild {
            partition: partition.clone(),
            index: index.clone(),
            comment: record.comment(),
        };
        let sql = create_sql(index, &rel, *method, policy, &with);
        notices = build_concurrently(conn, step, &journaled, index, &sql, mwm).await?;
        crate::fault::point("vector_after_build").await;
    }
    let said = report_notices(conn, step, partition, index, &notices, &mut record).await;
    record_build(conn, step, index, &record.comment()).await?;
    let mut detail = format!(
        "built concurrently from {vectors} vectors ({with}, maintenance_work_mem {} MB){said}",
        mwm / 1024
    );
    if let Some(old) = replaces {
        exec(
            conn,
            &format!("DROP INDEX CONCURRENTLY IF EXISTS {}", n.rel(old)),
        )
        .await?;
        detail.push_str(&format!("; dropped {old}"));
    }
    Ok(detail)
}

/// Logs the notices of a build as warnings about the partition; returns them for the
/// action's outcome. pgvector's "little data" means the build found fewer vectors than
/// lists to train on: the statistics that counted them are out of date. The partition is
/// analyzed, and the index recorded as trained on no vectors, so the next run that
/// counts `min_rows` vectors rebuilds it.
async fn report_notices(
    conn: &mut PgConnection,
    step: &Step<'_>,
    partition: &str,
    index: &str,
    notices: &[String],
    record: &mut crate::plan::vector::BuildRecord,
) -> String {
    let (mut said, mut little) = (String::new(), false);
    for n in notices {
        let mut hint = String::new();
        if n.contains("little data") && step.snap.citus.is_some() {
            // Each shard trains its own index: a shard holding few of the partition's
            // vectors (tenants hash unevenly) says so whatever the statistics; rebuilding
            // would find the same shard as small.
            hint = format!(
                " (a shard of {partition} holds fewer vectors than lists: tenants spread \
                 unevenly over its shards; recorded as trained on the {} vectors counted)",
                record.trained_on()
            );
        } else if n.contains("little data") {
            hint = format!(
                " (the statistics counted {} vectors: recorded as trained on none, rebuilt once \
                 {partition} has min_rows vectors; analyzing it)",
                record.trained_on()
            );
            record.vectors = Some(0);
            little = true;
        }
        warn!(index = %index, "{partition}: PostgreSQL notice while building {index}: {n}{hint}");
        said.push_str(&format!("; PostgreSQL notice: {n}{hint}"));
    }
    if little {
        let analyze = format!("ANALYZE {}", step.names.rel(partition));
        if let Err(e) = exec(conn, &analyze).await {
            warn!("{analyze}: {}", super::db_message(&e));
        }
    }
    said
}

/// Drops `idx` when an earlier attempt left it INVALID; returns its `indisvalid` as found
/// (`None`: there is no such index).
async fn drop_if_invalid(conn: &mut PgConnection, idx: &str) -> Result<Option<bool>, StepError> {
    let existing: Option<bool> =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
            .bind(idx)
            .fetch_optional(&mut *conn)
            .await?;
    if existing == Some(false) {
        exec(conn, &format!("DROP INDEX CONCURRENTLY IF EXISTS {idx}")).await?;
    }
    Ok(existing)
}

/// The table's vector index policy (checked against the database), the build's WITH
/// parameters, and the `maintenance_work_mem` (in kB) it gets.
async fn settings<'s>(
    conn: &mut PgConnection,
    step: &Step<'s>,
    method: VectorMethod,
    lists: Option<u32>,
    vectors: u64,
) -> Result<(&'s VectorIndexPolicy, String, u64), StepError> {
    let policy = step
        .table
        .vector_index
        .as_ref()
        .ok_or_else(|| StepError::Fatal("the table has no vector_index policy".into()))?;
    let dims = crate::catalog::vector::validate_policy(conn, step.table)
        .await
        .map_err(|e| StepError::Fatal(e.to_string()))?
        .unwrap_or(0);
    let with = match method {
        VectorMethod::Ivfflat => format!("lists = {}", lists.unwrap_or(1)),
        VectorMethod::Hnsw => format!(
            "m = {}, ef_construction = {}",
            policy.m, policy.ef_construction
        ),
    };
    let mwm = crate::plan::vector::maintenance_work_mem_kb(policy, vectors, lists, dims);
    Ok((policy, with, mwm))
}

fn create_sql(
    index: &str,
    rel: &str,
    method: VectorMethod,
    policy: &VectorIndexPolicy,
    with: &str,
) -> String {
    format!(
        "CREATE INDEX CONCURRENTLY {} ON {rel} USING {} ({} {}) WITH ({with})",
        quote_ident(index),
        method.as_str(),
        policy.column.quoted(),
        policy.opclass.quoted()
    )
}

/// Journals the build as `journaled`, then runs `sql` (a `CREATE INDEX CONCURRENTLY`,
/// which commits on its own) under `maintenance_work_mem = mwm` kB, its progress
/// reported from the monitor pool when there is one. Returns the notices PostgreSQL sent
/// during the build.
async fn build_concurrently(
    conn: &mut PgConnection,
    step: &Step<'_>,
    journaled: &Journaled,
    index: &str,
    sql: &str,
    mwm: u64,
) -> Result<Vec<String>, StepError> {
    journal::put(conn, &step.label(), journaled, "building").await?;
    exec(conn, &format!("SET maintenance_work_mem = '{mwm}kB'")).await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await?;
    let watcher = step
        .monitor
        .cloned()
        .map(|pool| tokio::spawn(report_progress(pool, pid, index.to_string())));
    let (built, notices) = crate::notice::capture(exec(conn, sql)).await;
    if let Some(w) = watcher {
        w.abort();
    }
    let _ = exec(conn, "RESET maintenance_work_mem").await;
    built?;
    Ok(notices)
}

/// Writes the build record of an index an interrupted run built (from the journal).
pub(super) async fn adopt(
    conn: &mut PgConnection,
    step: &Step<'_>,
    index: &str,
    comment: &str,
) -> Result<String, StepError> {
    record_build(conn, step, index, comment).await?;
    Ok(format!("build record written: {comment}"))
}

/// The index's comment and the journal entry's removal, in one transaction.
async fn record_build(
    conn: &mut PgConnection,
    step: &Step<'_>,
    index: &str,
    comment: &str,
) -> Result<(), StepError> {
    let mut tx = conn.begin().await?;
    exec(
        &mut tx,
        &format!(
            "COMMENT ON INDEX {} IS '{}'",
            step.names.rel(index),
            comment.replace('\'', "''")
        ),
    )
    .await?;
    journal::remove(&mut tx, &step.label(), "vector_build", index).await?;
    tx.commit().await?;
    Ok(())
}

/// Logs a long index build's phase and progress every 10 s.
async fn report_progress(pool: sqlx::PgPool, pid: i32, index: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let row: Result<Option<(String, Option<f64>)>, _> = sqlx::query_as(
            "SELECT phase, round(100.0 * CASE WHEN blocks_total > 0 THEN blocks_done::numeric / blocks_total
                                              WHEN tuples_total > 0 THEN tuples_done::numeric / tuples_total END, 1)::float8
               FROM pg_stat_progress_create_index WHERE pid = $1",
        )
        .bind(pid)
        .fetch_optional(&pool)
        .await;
        match row {
            Ok(Some((phase, pct))) => match pct {
                Some(p) => info!(index = %index, "building: {phase}, {p}%"),
                None => info!(index = %index, "building: {phase}"),
            },
            Ok(None) => return,
            Err(_) => {}
        }
    }
}
