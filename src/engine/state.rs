//! What survives a restart of the sidecar: the last successful maintenance per table, in
//! the database it maintains (table `partwarden_state`, created by migration 0003 or here).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::engine::manager::TableRun;
use crate::error::Error;

/// Creates the state table when it is missing (the maintenance role owns its schema).
pub async fn ensure_table(conn: &mut PgConnection) -> Result<(), Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('partwarden_state') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        sqlx::Executor::execute(
            &mut *conn,
            include_str!("../../migrations/0003_partwarden_state.sql"),
        )
        .await?;
    }
    Ok(())
}

/// Last success per table label.
pub async fn last_successes(
    conn: &mut PgConnection,
) -> Result<BTreeMap<String, DateTime<Utc>>, Error> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT table_name, last_success FROM partwarden_state WHERE last_success IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Records a run; `success` moves `last_success` forward.
pub async fn record_run(
    conn: &mut PgConnection,
    table: &str,
    success: bool,
    at: DateTime<Utc>,
    run: &serde_json::Value,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO partwarden_state (table_name, last_success, last_run, updated_at)
         VALUES ($1, CASE WHEN $2 THEN $3 END, $4, now())
         ON CONFLICT (table_name) DO UPDATE
            SET last_success = CASE WHEN $2 THEN $3 ELSE partwarden_state.last_success END,
                last_run = EXCLUDED.last_run, updated_at = now()",
    )
    .bind(table)
    .bind(success)
    .bind(at)
    .bind(run)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A successful run that changed nothing is not written again when a success was recorded
/// less than this long ago: repeated no-op runs write nothing (no WAL, no dead tuples),
/// and a last-success time a minute old serves every alert that reads it.
pub const NOOP_RECORD_INTERVAL: chrono::Duration = chrono::Duration::minutes(1);

/// The recorded last success of each of `tables` that has one.
pub async fn recorded_successes(
    conn: &mut PgConnection,
    tables: &[String],
) -> Result<BTreeMap<String, DateTime<Utc>>, Error> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT table_name, last_success FROM partwarden_state
          WHERE table_name = ANY($1) AND last_success IS NOT NULL",
    )
    .bind(tables)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Whether `run` adds nothing to what is recorded: it succeeded without doing anything,
/// and a success less than [`NOOP_RECORD_INTERVAL`] before it is recorded.
pub fn already_recorded(run: &TableRun, recorded: Option<&DateTime<Utc>>) -> bool {
    let noop = run.report.as_ref().is_some_and(|r| r.outcomes.is_empty());
    run.succeeded()
        && noop
        && recorded
            .is_some_and(|at| *at <= run.started_at && run.started_at - *at < NOOP_RECORD_INTERVAL)
}

/// One table's run, as [`record_run`] takes it.
pub struct RunRecord {
    pub table: String,
    pub success: bool,
    pub at: DateTime<Utc>,
    pub run: serde_json::Value,
}

/// [`record_run`] for several tables in one statement (none when `runs` is empty).
pub async fn record_all(conn: &mut PgConnection, runs: &[RunRecord]) -> Result<(), Error> {
    if runs.is_empty() {
        return Ok(());
    }
    let tables: Vec<&str> = runs.iter().map(|r| r.table.as_str()).collect();
    let success: Vec<bool> = runs.iter().map(|r| r.success).collect();
    let at: Vec<DateTime<Utc>> = runs.iter().map(|r| r.at).collect();
    let json: Vec<&serde_json::Value> = runs.iter().map(|r| &r.run).collect();
    sqlx::query(
        "INSERT INTO partwarden_state (table_name, last_success, last_run, updated_at)
         SELECT t, CASE WHEN s THEN a END, j, now()
           FROM unnest($1::text[], $2::bool[], $3::timestamptz[], $4::jsonb[]) AS r(t, s, a, j)
         ON CONFLICT (table_name) DO UPDATE
            SET last_success = coalesce(EXCLUDED.last_success, partwarden_state.last_success),
                last_run = EXCLUDED.last_run, updated_at = now()",
    )
    .bind(&tables)
    .bind(&success)
    .bind(&at)
    .bind(&json)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
