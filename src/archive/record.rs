//! `partwarden_exports` (migration 0007): one row per verified export, inserted in the
//! transaction that drops the partition.

use sqlx::PgConnection;

use super::export::Exported;

/// Creates the table when it is missing (the maintenance role owns its schema).
pub async fn ensure_table(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    if !exists(conn).await? {
        sqlx::Executor::execute(
            &mut *conn,
            include_str!("../../migrations/0007_partwarden_exports.sql"),
        )
        .await?;
    }
    Ok(())
}

async fn exists(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass('partwarden_exports') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
}

/// Records a verified export.
pub async fn insert(
    conn: &mut PgConnection,
    exported: &Exported,
    seconds: f64,
) -> Result<(), sqlx::Error> {
    let m = &exported.manifest;
    sqlx::query(
        "INSERT INTO partwarden_exports (table_name, partition_name, run_id, range_from, range_to,
            store_url, manifest_path, manifest_sha256, row_count, parquet_bytes, source_bytes,
            seconds, manifest)
         VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&m.table)
    .bind(&m.partition)
    .bind(&m.run_id)
    .bind(m.bounds.from)
    .bind(m.bounds.to)
    .bind(&m.store)
    .bind(exported.manifest_path.as_ref())
    .bind(&exported.manifest_sha256)
    .bind(m.rows as i64)
    .bind(m.bytes as i64)
    .bind(m.source_bytes)
    .bind(seconds)
    .bind(sqlx::types::Json(m))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The run ids recorded for a partition (its verified exports).
pub async fn recorded_runs(
    conn: &mut PgConnection,
    table: &str,
    partition: &str,
) -> Result<Vec<String>, sqlx::Error> {
    if !exists(conn).await? {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "SELECT run_id::text FROM partwarden_exports WHERE table_name = $1 AND partition_name = $2",
    )
    .bind(table)
    .bind(partition)
    .fetch_all(&mut *conn)
    .await
}

/// One recorded export, as restore needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub run_id: String,
    pub store_url: String,
    pub manifest_path: String,
    pub manifest_sha256: String,
    pub row_count: i64,
    pub range_from: chrono::DateTime<chrono::Utc>,
    pub range_to: chrono::DateTime<chrono::Utc>,
    pub state: String,
}

/// The export of `partition` to restore: `run` when given, else the latest.
pub async fn find(
    conn: &mut PgConnection,
    table: &str,
    partition: &str,
    run: Option<&str>,
) -> Result<Option<ExportRow>, sqlx::Error> {
    if !exists(conn).await? {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT run_id::text AS run_id, store_url, manifest_path, manifest_sha256, row_count,
                range_from, range_to, state
           FROM partwarden_exports
          WHERE table_name = $1 AND partition_name = $2 AND ($3::text IS NULL OR run_id::text = $3)
          ORDER BY exported_at DESC LIMIT 1",
    )
    .bind(table)
    .bind(partition)
    .bind(run)
    .fetch_optional(&mut *conn)
    .await
}

/// Marks a run restored.
pub async fn mark_restored(
    conn: &mut PgConnection,
    table: &str,
    partition: &str,
    run: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE partwarden_exports SET state = 'restored', restored_at = now()
          WHERE table_name = $1 AND partition_name = $2 AND run_id::text = $3",
    )
    .bind(table)
    .bind(partition)
    .bind(run)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
