//! Writes to `partwarden_journal` (migration 0005): an action that spans transactions
//! records itself before its first step that commits on its own, and finishes or removes
//! its entry in the same transaction as its last step. Reading is the catalog's job
//! ([`crate::catalog::read_journal`]); the planner decides what an entry still needs.

use serde_json::Value;
use sqlx::PgConnection;

use crate::catalog::Journaled;

/// Creates the journal when it is missing (the maintenance role owns its schema).
pub async fn ensure_table(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('partwarden_journal') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        sqlx::Executor::execute(
            &mut *conn,
            include_str!("../../migrations/0005_partwarden_journal.sql"),
        )
        .await?;
    }
    Ok(())
}

/// Records (or replaces) the entry for `what` in `state`.
pub async fn put(
    conn: &mut PgConnection,
    table: &str,
    what: &Journaled,
    state: &str,
) -> Result<(), sqlx::Error> {
    let mut details = serde_json::to_value(what).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut details {
        m.remove("kind");
    }
    sqlx::query(
        "INSERT INTO partwarden_journal (table_name, kind, object, state, details)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (table_name, kind, object) DO UPDATE
            SET state = EXCLUDED.state, details = EXCLUDED.details, updated_at = now()",
    )
    .bind(table)
    .bind(what.kind())
    .bind(what.object())
    .bind(state)
    .bind(details)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes the entry of `kind` for `object`, if there is one.
pub async fn remove(
    conn: &mut PgConnection,
    table: &str,
    kind: &str,
    object: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM partwarden_journal WHERE table_name = $1 AND kind = $2 AND object = $3",
    )
    .bind(table)
    .bind(kind)
    .bind(object)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
