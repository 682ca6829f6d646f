//! What survives a restart of the sidecar: the last successful maintenance per table, in
//! the database it maintains (table `partwarden_state`, created by migration 0003 or here).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

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
