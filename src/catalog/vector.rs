//! What the database says about a table's vector column and the index builds under way:
//! checked before any vector index is planned, shown by `status`.

use serde::Serialize;
use sqlx::PgConnection;

use crate::config::TableConfig;
use crate::error::Error;

/// Checks a table's vector policy against the database: the column is a pgvector
/// `vector` and the operator class exists for the method. Returns the dimensions.
pub async fn validate_policy(
    conn: &mut PgConnection,
    table: &TableConfig,
) -> Result<Option<u32>, Error> {
    let Some(policy) = &table.vector_index else {
        return Ok(None);
    };
    let key = |k: &str| table.key(&format!("vector_index.{k}"));
    let col: Option<(String, i32)> = sqlx::query_as(
        "SELECT t.typname::text, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
    )
    .bind(table.qualified_name())
    .bind(policy.column.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let dims = match col {
        None => {
            return Err(Error::Policy {
                key: key("column"),
                message: format!("{} has no column {}", table.label(), policy.column),
            })
        }
        Some((t, m)) if t == "vector" => u32::try_from(m).unwrap_or(0),
        Some((t, _)) => {
            return Err(Error::Policy {
                key: key("column"),
                message: format!("column {} is {t}, not a pgvector vector", policy.column),
            })
        }
    };
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                         WHERE oc.opcname = $1 AND am.amname = $2)",
    )
    .bind(policy.opclass.as_str())
    .bind(policy.method.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(Error::Policy {
            key: key("opclass"),
            message: format!(
                "operator class {} does not exist for {}",
                policy.opclass,
                policy.method.as_str()
            ),
        });
    }
    Ok(Some(dims))
}

/// A `CREATE INDEX` under way, from `pg_stat_progress_create_index`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BuildProgress {
    pub partition: String,
    pub index: Option<String>,
    pub phase: String,
    /// Percent of the current phase done, when PostgreSQL reports totals.
    pub percent: Option<f64>,
}

pub async fn progress(conn: &mut PgConnection) -> Result<Vec<BuildProgress>, Error> {
    Ok(sqlx::query_as(
        "SELECT c.relname::text AS partition, ic.relname::text AS index, p.phase,
                round(100.0 * CASE WHEN p.blocks_total > 0 THEN p.blocks_done::numeric / p.blocks_total
                                   WHEN p.tuples_total > 0 THEN p.tuples_done::numeric / p.tuples_total END, 1)::float8
                  AS percent
           FROM pg_stat_progress_create_index p
           JOIN pg_class c ON c.oid = p.relid
           LEFT JOIN pg_class ic ON ic.oid = p.index_relid",
    )
    .fetch_all(&mut *conn)
    .await?)
}
