//! What the database says about a table's vector column — its type (checked before any
//! vector index is planned), its NULL fraction per partition (vectors are counted from
//! it) — and the index builds under way, shown by `status`.

use serde::Serialize;
use sqlx::PgConnection;

use crate::catalog::TableSnapshot;
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
    let policy_error = |k: &str, message: String| Error::Policy {
        table: table.label(),
        setting: format!("vector_index.{k}"),
        message,
    };
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
            return Err(policy_error(
                "column",
                format!("the table has no column {}", policy.column),
            ))
        }
        Some((t, m)) if t == "vector" => u32::try_from(m).unwrap_or(0),
        Some((t, _)) => {
            return Err(policy_error(
                "column",
                format!("column {} is {t}, not a pgvector vector", policy.column),
            ))
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
        return Err(policy_error(
            "opclass",
            format!(
                "operator class {} does not exist for {}",
                policy.opclass,
                policy.method.as_str()
            ),
        ));
    }
    Ok(Some(dims))
}

/// `null_frac` of the vector column of every partition, from `pg_statistic` when
/// partwarden's role may read it (a superuser, or granted SELECT on it), else from
/// `pg_stats`, which hides the statistics of a table whose row-level security applies to
/// the reader — every partition under forced RLS, for its owner.
const NULL_FRAC_FROM_PG_STATISTIC: &str = "
SELECT c.oid::int8, s.stanullfrac::float8, false
  FROM pg_inherits inh JOIN pg_class c ON c.oid = inh.inhrelid
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped
  LEFT JOIN pg_statistic s ON s.starelid = c.oid AND s.staattnum = a.attnum AND NOT s.stainherit
 WHERE inh.inhparent = $1::int8::oid";

const NULL_FRAC_FROM_PG_STATS: &str = "
SELECT c.oid::int8, s.null_frac::float8, c.relrowsecurity AND row_security_active(c.oid)
  FROM pg_inherits inh JOIN pg_class c ON c.oid = inh.inhrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
                      AND s.attname = $2 AND NOT s.inherited
 WHERE inh.inhparent = $1::int8::oid";

/// Fills `vector_null_frac` and `column_stats_hidden` of the snapshot's partitions for
/// the vector column `column`: the planner counts vectors, not rows, and the statistics
/// are the one count that needs no scan (and no access to tenant rows).
pub async fn read_column_stats(
    conn: &mut PgConnection,
    snap: &mut TableSnapshot,
    column: &str,
    statistic_readable: bool,
) -> Result<(), Error> {
    let sql = if statistic_readable {
        NULL_FRAC_FROM_PG_STATISTIC
    } else {
        NULL_FRAC_FROM_PG_STATS
    };
    let rows: Vec<(i64, Option<f64>, bool)> = sqlx::query_as(sql)
        .bind(snap.oid)
        .bind(column)
        .fetch_all(&mut *conn)
        .await?;
    for (oid, null_frac, hidden) in rows {
        let found = snap
            .partitions
            .iter_mut()
            .chain(snap.default_partition.iter_mut())
            .find(|p| p.oid == oid);
        if let Some(p) = found {
            p.vector_null_frac = null_frac;
            p.column_stats_hidden = hidden && null_frac.is_none();
        }
    }
    Ok(())
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
