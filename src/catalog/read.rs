//! Catalog reader: one query per managed table gives everything the planner and the
//! metrics need — partitions with bounds parsed from `pg_get_expr(relpartbound)` (never
//! from names), the default partition, estimated rows (`reltuples`, never `count(*)`),
//! sizes, the parent's indexes and each partition's matching indexes with validity,
//! row-level security, and partitions left "detach pending".

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use futures_util::TryStreamExt;
use serde::Deserialize;
use sqlx::{Connection, PgConnection, Row, ValueRef};

use super::*;
use crate::calendar::PartitionBounds;
use crate::config::TableConfig;
use crate::error::Error;

#[derive(Debug, Deserialize)]
struct RawTable {
    oid: i64,
    relkind: String,
    strategy: Option<String>,
    key_columns: Option<Vec<Option<String>>>,
    key_types: Option<Vec<String>>,
    columns: Vec<String>,
    rls_enabled: bool,
    rls_forced: bool,
    policies: Option<Vec<Policy>>,
    indexes: Option<Vec<ParentIndex>>,
    partitions: Option<Vec<RawPartition>>,
    default_oid: Option<i64>,
    in_recovery: bool,
    statistic_readable: bool,
    /// The database has Citus: the snapshot then asks it whether the table is distributed.
    #[serde(default)]
    citus_installed: bool,
}

#[derive(Debug, Deserialize)]
struct RawPartition {
    oid: i64,
    schema: String,
    name: String,
    relkind: String,
    bound: String,
    detach_pending: bool,
    reltuples: f64,
    heap_bytes: i64,
    total_bytes: i64,
    index_bytes: i64,
    size_pretty: String,
    rls_enabled: bool,
    rls_forced: bool,
    policies: Option<Vec<Policy>>,
    indexes: Option<Vec<PartitionIndex>>,
}

const POLICIES_JSON: &str = r#"
    SELECT json_agg(json_build_object(
        'name', pol.polname::text,
        'cmd', CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                               WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
        'permissive', pol.polpermissive,
        'roles', (SELECT json_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(ro.rolname) END ORDER BY 1)
                    FROM unnest(pol.polroles) r LEFT JOIN pg_roles ro ON ro.oid = r),
        'qual', pg_get_expr(pol.polqual, pol.polrelid),
        'with_check', pg_get_expr(pol.polwithcheck, pol.polrelid)) ORDER BY pol.polname)
      FROM pg_policy pol WHERE pol.polrelid = "#;

fn snapshot_sql() -> String {
    format!(
        r#"
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(schema_name, table_name, ord)
),
parent AS (
    SELECT w.ord, c.oid, c.relkind, c.relrowsecurity, c.relforcerowsecurity
      FROM wanted w
      LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace)
             ON n.nspname = w.schema_name AND c.relname = w.table_name
),
-- Index builds under way in this database. PostgreSQL shows another role's build to
-- partwarden's role without its relid and index_relid; the relations its backend holds
-- locked stand in for them.
builds AS MATERIALIZED (
    SELECT pr.pid, pr.relid, pr.index_relid FROM pg_stat_progress_create_index pr
     WHERE pr.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
),
building_on AS MATERIALIZED (
    SELECT b.relid AS relation FROM builds b WHERE b.relid IS NOT NULL
    UNION
    SELECT l.relation FROM builds b
     CROSS JOIN LATERAL (SELECT l.relation FROM pg_locks l
                          WHERE l.pid = b.pid AND l.locktype = 'relation') l
     WHERE b.relid IS NULL
)
SELECT p.ord, CASE WHEN p.oid IS NOT NULL THEN json_build_object(
    'oid', p.oid::int8,
    'relkind', p.relkind::text,
    'strategy', pt.partstrat::text,
    'key_columns', (SELECT json_agg(a.attname::text ORDER BY k.ord)
                      FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY k(attnum, ord)
                      LEFT JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = k.attnum),
    'key_types', (SELECT json_agg(format_type(a.atttypid, NULL) ORDER BY k.ord)
                    FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = k.attnum),
    'columns', coalesce((SELECT json_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = p.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '[]'),
    'rls_enabled', p.relrowsecurity,
    'rls_forced', p.relforcerowsecurity,
    'policies', ({POLICIES_JSON} p.oid),
    'indexes', (SELECT json_agg(json_build_object(
                    'oid', i.indexrelid::int8,
                    'name', ic.relname::text,
                    'am', am.amname::text,
                    'definition', pg_get_indexdef(i.indexrelid),
                    'is_constraint', EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                                              AND con.conrelid = p.oid),
                    'is_unique', i.indisunique,
                    'valid', i.indisvalid) ORDER BY ic.relname)
                  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                 WHERE i.indrelid = p.oid),
    'default_oid', nullif(pt.partdefid, 0)::int8,
    'in_recovery', pg_is_in_recovery(),
    'statistic_readable', has_table_privilege('pg_catalog.pg_statistic', 'SELECT'),
    'citus_installed', to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL,
    'partitions', (SELECT json_agg(json_build_object(
                    'oid', c.oid::int8,
                    'schema', n.nspname::text,
                    'name', c.relname::text,
                    'relkind', c.relkind::text,
                    -- relid 0: a bound holds constants only, and deparsing against the
                    -- partition opens it (builds its relcache entry), which in a new
                    -- backend is most of the query's time at a thousand partitions
                    'bound', pg_get_expr(c.relpartbound, 0),
                    'detach_pending', inh.inhdetachpending,
                    'reltuples', c.reltuples,
                    -- also without sizes for a never-analyzed default partition: its
                    -- main fork's size tells "empty" from "rows nobody counted"
                    -- (Partition::rows_known), which maintenance reports. Not for every
                    -- partition: pg_relation_size opens the relation, costly in a new backend
                    'heap_bytes', CASE WHEN $3 OR (c.reltuples < 0 AND c.oid = pt.partdefid)
                                       THEN pg_relation_size(c.oid) ELSE -1 END,
                    'total_bytes', sz.total,
                    'index_bytes', CASE WHEN $3 THEN pg_indexes_size(c.oid) ELSE -1 END,
                    'size_pretty', CASE WHEN $3 THEN pg_size_pretty(sz.total) ELSE '' END,
                    'rls_enabled', c.relrowsecurity,
                    'rls_forced', c.relforcerowsecurity,
                    'policies', ({POLICIES_JSON} c.oid),
                    'indexes', (SELECT json_agg(json_build_object(
                                    'oid', i.indexrelid::int8,
                                    'name', ic.relname::text,
                                    'am', am.amname::text,
                                    'valid', i.indisvalid,
                                    'parent_index', (SELECT ii.inhparent::int8 FROM pg_inherits ii
                                                      WHERE ii.inhrelid = i.indexrelid),
                                    -- definitions and comments are read for pgvector's
                                    -- indexes only: the planner needs no other partition
                                    -- index's, and pg_get_indexdef is most of the query's
                                    -- time at a thousand partitions
                                    'comment', CASE WHEN am.amname IN ('ivfflat', 'hnsw')
                                                    THEN obj_description(i.indexrelid, 'pg_class') END,
                                    'size_bytes', CASE WHEN $3 THEN pg_relation_size(i.indexrelid) ELSE -1 END,
                                    'building', coalesce(
                                        i.indexrelid IN (SELECT b.index_relid FROM builds b
                                                          WHERE b.index_relid IS NOT NULL)
                                        OR (NOT i.indisvalid
                                            AND c.oid IN (SELECT bo.relation FROM building_on bo)),
                                        false),
                                    'definition', CASE WHEN am.amname IN ('ivfflat', 'hnsw')
                                                       THEN pg_get_indexdef(i.indexrelid) ELSE '' END)
                                    ORDER BY ic.relname)
                                  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                                  JOIN pg_am am ON am.oid = ic.relam
                                 WHERE i.indrelid = c.oid)))
                     FROM pg_inherits inh
                     JOIN pg_class c ON c.oid = inh.inhrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     -- once per partition: it stats every file of the partition
                     CROSS JOIN LATERAL (SELECT CASE WHEN $3 THEN pg_total_relation_size(c.oid) ELSE -1 END AS total) sz
                    WHERE inh.inhparent = p.oid)
) END
FROM parent p LEFT JOIN pg_partitioned_table pt ON pt.partrelid = p.oid
ORDER BY p.ord
"#
    )
}

/// How much a snapshot reads. Sizes are a `stat()` of every file of every partition —
/// most of the snapshot's server time at a thousand partitions — and maintenance needs
/// none of them (the daemon's statistics refresh reads them, on its own schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything, sizes included (`status`, the statistics refresh).
    Full,
    /// No sizes: they read as -1 (`total_bytes`, `heap_bytes`, …), except `heap_bytes` of a
    /// never-analyzed default partition, which `Partition::rows_known` needs for the notes.
    WithoutSizes,
}

/// Reads one table's snapshot. Errors name the table when it is missing, not
/// partitioned, not range-partitioned on the configured `timestamptz` column.
pub async fn read_table(
    conn: &mut PgConnection,
    table: &TableConfig,
) -> Result<TableSnapshot, Error> {
    let mut all = read_tables(conn, &[table], Detail::Full).await?;
    all.pop().unwrap_or_else(|| {
        Err(Error::Catalog {
            table: table.label(),
            message: "the catalog returned no snapshot".into(),
        })
    })
}

/// The snapshots of `tables`, in one round trip for the catalog and one for the journal
/// (plus a vector column's statistics per table that has a vector policy). The outer
/// error is the database's; each table's own problem (missing, not partitioned…) is its
/// entry's.
pub async fn read_tables(
    conn: &mut PgConnection,
    tables: &[&TableConfig],
    detail: Detail,
) -> Result<Vec<Result<TableSnapshot, Error>>, Error> {
    let schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut raws = Vec::with_capacity(tables.len());
    {
        // Row by row: at 30,000 partitions the rows are ~22 MiB of JSON, which need not
        // all be held at once beside what they parse into.
        let sql = snapshot_sql();
        let mut rows = sqlx::query(&sql)
            .bind(&schemas)
            .bind(&names)
            .bind(detail == Detail::Full)
            .fetch(&mut *conn);
        let mut wanted = tables.iter();
        while let Some(row) = rows.try_next().await? {
            if let Some(table) = wanted.next() {
                raws.push(parse_raw(table, &row));
            }
        }
    }
    // The connection's read buffer grew to the size of those rows and would keep it for
    // the connection's lifetime, in every pooled connection that ever read a snapshot.
    conn.shrink_buffers();
    let labels: Vec<String> = tables.iter().map(|t| t.label()).collect();
    let mut journals = read_journals(conn, &labels).await?;
    let mut out = Vec::with_capacity(tables.len());
    for (table, raw) in tables.iter().zip(raws) {
        let snap = match raw {
            Ok(None) => Err(missing_table(conn, table).await?),
            Ok(Some(raw)) => {
                let (statistic_readable, citus) = (raw.statistic_readable, raw.citus_installed);
                match into_snapshot(table, raw) {
                    Ok(mut snap) => {
                        // A table partwarden does not maintain on Citus is that table's
                        // error, as a missing one is.
                        let vector_column = table.vector_index.as_ref().map(|v| v.column.as_str());
                        let distributed = if citus {
                            match super::citus::read(
                                conn,
                                &mut snap,
                                vector_column,
                                statistic_readable,
                            )
                            .await
                            {
                                Ok(d) => d,
                                Err(e) => {
                                    out.push(Err(e));
                                    continue;
                                }
                            }
                        } else {
                            false
                        };
                        // A distributed table's column statistics are its shards' (read above).
                        if let Some(policy) = table.vector_index.as_ref().filter(|_| !distributed) {
                            super::vector::read_column_stats(
                                conn,
                                &mut snap,
                                policy.column.as_str(),
                                statistic_readable,
                            )
                            .await?;
                        }
                        snap.journal = journals.remove(&table.label()).unwrap_or_default();
                        Ok(snap)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        out.push(snap);
    }
    Ok(out)
}

/// One row of the snapshot query: the table's JSON, parsed from the row's bytes straight
/// into the typed rows (at 1,000+ partitions the text is megabytes, and a
/// serde_json::Value of it several times that).
/// `None` when the table does not exist.
fn parse_raw(table: &TableConfig, row: &sqlx::postgres::PgRow) -> Result<Option<RawTable>, Error> {
    let shape = |e: &dyn std::fmt::Display| Error::Catalog {
        table: table.label(),
        message: format!("unexpected catalog shape: {e}"),
    };
    let value = row.try_get_raw(1)?;
    if value.is_null() {
        return Ok(None);
    }
    let bytes = value.as_bytes().map_err(|e| shape(&e))?;
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| shape(&e))
}

const JOURNAL_SQL: &str = r#"
SELECT j.table_name, jsonb_build_object(
    'kind', j.kind, 'state', j.state, 'started_at', j.started_at,
    'relation', (SELECT json_build_object(
                     'schema', n.nspname::text, 'name', c.relname::text,
                     'attached', i.inhrelid IS NOT NULL,
                     'detach_pending', coalesce(i.inhdetachpending, false),
                     'rls_enabled', c.relrowsecurity, 'rls_forced', c.relforcerowsecurity,
                     'policies', (POLICIES c.oid))
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
                  WHERE j.kind = 'expire'
                    AND c.oid = (j.details->>'oid')::bigint::oid
                    AND c.relname = j.details->>'partition')
) || j.details
  FROM partwarden_journal j WHERE j.table_name = ANY($1) ORDER BY j.table_name, j.started_at, j.object
"#;

/// The journal entries of one table (none when the journal table does not exist yet).
pub async fn read_journal(
    conn: &mut PgConnection,
    label: &str,
) -> Result<Vec<JournalEntry>, Error> {
    let mut all = read_journals(conn, &[label.to_string()]).await?;
    Ok(all.remove(label).unwrap_or_default())
}

/// The journal entries of each of `labels`, in one query.
async fn read_journals(
    conn: &mut PgConnection,
    labels: &[String],
) -> Result<std::collections::HashMap<String, Vec<JournalEntry>>, Error> {
    let mut out = std::collections::HashMap::new();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('partwarden_journal') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(out);
    }
    let sql = JOURNAL_SQL.replace("POLICIES", POLICIES_JSON);
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(&sql)
        .bind(labels)
        .fetch_all(&mut *conn)
        .await?;
    for (label, v) in rows {
        let entry = serde_json::from_value(v.clone()).map_err(|e| Error::Catalog {
            table: label.clone(),
            message: format!("unreadable partwarden_journal entry {v}: {e}"),
        })?;
        out.entry(label).or_insert_with(Vec::new).push(entry);
    }
    Ok(out)
}

/// The row-level security `relation` (quoted, qualified) has now; `None` when it is gone.
pub async fn read_rls(
    conn: &mut PgConnection,
    relation: &str,
) -> Result<Option<RlsState>, sqlx::Error> {
    let sql = format!(
        "SELECT json_build_object('enabled', c.relrowsecurity, 'forced', c.relforcerowsecurity,
                                  'policies', coalesce(({POLICIES_JSON} c.oid), '[]'))
           FROM pg_class c WHERE c.oid = to_regclass($1)"
    );
    let v: Option<serde_json::Value> = sqlx::query_scalar(&sql)
        .bind(relation)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

fn into_snapshot(table: &TableConfig, raw: RawTable) -> Result<TableSnapshot, Error> {
    check_range_partitioned(table, &raw)?;
    let key_type = check_key(table, &raw)?;
    let (partitions, default_partition) =
        into_partitions(raw.partitions.unwrap_or_default(), raw.default_oid);
    Ok(TableSnapshot {
        schema: table.schema.to_string(),
        name: table.name.to_string(),
        oid: raw.oid,
        key_column: table.column.as_str().to_string(),
        key_type,
        columns: raw.columns,
        rls_enabled: raw.rls_enabled,
        rls_forced: raw.rls_forced,
        policies: raw.policies.unwrap_or_default(),
        parent_indexes: raw.indexes.unwrap_or_default(),
        partitions,
        default_partition,
        in_recovery: raw.in_recovery,
        journal: Vec::new(),
        default_census: None,
        citus: None,
    })
}

/// The database does not have the table the configuration describes: a configuration
/// error naming the key (exit 2), not a runtime failure.
fn mismatch(table: &TableConfig, setting: &str, message: String) -> Error {
    Error::Policy {
        table: table.label(),
        setting: setting.to_string(),
        message,
    }
}

/// Why the configured table is not there. In a database partwarden's migrations were never
/// recorded in (no `_sqlx_migrations`), a table they create, in the schema they would
/// create it in, is missing because `partwarden migrate` has not run; otherwise the
/// configuration names a table the database does not have.
async fn missing_table(conn: &mut PgConnection, table: &TableConfig) -> Result<Error, Error> {
    let (never_migrated, schema, database): (bool, Option<String>, String) = sqlx::query_as(
        "SELECT to_regclass('_sqlx_migrations') IS NULL, current_schema()::text, current_database()::text",
    )
    .fetch_one(&mut *conn)
    .await?;
    let shipped = crate::diagnose::MIGRATED_TABLES.contains(&table.name.as_str())
        && schema.as_deref() == Some(table.schema.as_str());
    Ok(if never_migrated && shipped {
        Error::NotMigrated {
            object: table.label(),
            database: Some(database),
        }
    } else {
        mismatch(
            table,
            "name",
            format!(
                "no such table in database {database:?} (check name and schema, and that your \
                 migration created it)"
            ),
        )
    })
}

fn check_range_partitioned(table: &TableConfig, raw: &RawTable) -> Result<(), Error> {
    if raw.relkind != "p" {
        return Err(mismatch(
            table,
            "name",
            "not a partitioned table (create it with PARTITION BY RANGE)".into(),
        ));
    }
    if raw.strategy.as_deref() != Some("r") {
        return Err(mismatch(
            table,
            "name",
            format!(
                "partitioned by {}, but partwarden manages range partitions",
                match raw.strategy.as_deref() {
                    Some("l") => "list",
                    Some("h") => "hash",
                    _ => "an unknown strategy",
                }
            ),
        ));
    }
    Ok(())
}

/// The partition key must be the configured column alone, of type `timestamptz`; returns
/// the type's name.
fn check_key(table: &TableConfig, raw: &RawTable) -> Result<String, Error> {
    let key_columns: &[Option<String>] = raw.key_columns.as_deref().unwrap_or_default();
    let want = table.column.as_str();
    if key_columns.len() != 1 || key_columns[0].as_deref() != Some(want) {
        let have: Vec<String> = key_columns
            .iter()
            .map(|c| c.clone().unwrap_or_else(|| "(expression)".into()))
            .collect();
        return Err(mismatch(
            table,
            "column",
            format!(
                "not partitioned by column {want:?}: its partition key is ({})",
                have.join(", ")
            ),
        ));
    }
    let key_types: &[String] = raw.key_types.as_deref().unwrap_or_default();
    let key_type = key_types.first().cloned().unwrap_or_default();
    if key_type != "timestamp with time zone" {
        return Err(mismatch(
            table,
            "column",
            format!(
                "partition key {want} is of type {key_type}; partwarden manages timestamptz keys (bounds are UTC instants)"
            ),
        ));
    }
    Ok(key_type)
}

/// The range partitions ordered by lower bound (then name), and the default partition.
fn into_partitions(
    raw: Vec<RawPartition>,
    default_oid: Option<i64>,
) -> (Vec<Partition>, Option<Partition>) {
    let mut partitions = Vec::new();
    let mut default_partition = None;
    for p in raw {
        let part = into_partition(p, default_oid);
        if part.is_default {
            default_partition = Some(part);
        } else {
            partitions.push(part);
        }
    }
    partitions.sort_by(|a, b| {
        a.bounds
            .map(|x| x.from)
            .cmp(&b.bounds.map(|x| x.from))
            .then(a.name.cmp(&b.name))
    });
    (partitions, default_partition)
}

fn into_partition(p: RawPartition, default_oid: Option<i64>) -> Partition {
    let is_default = Some(p.oid) == default_oid || p.bound == "DEFAULT";
    let bounds = if is_default {
        None
    } else {
        parse_range_bound(&p.bound)
    };
    let part = Partition {
        oid: p.oid,
        schema: p.schema,
        name: p.name,
        bound_expr: p.bound,
        bounds,
        is_default,
        detach_pending: p.detach_pending,
        rows_estimate: p.reltuples,
        heap_bytes: p.heap_bytes,
        total_bytes: p.total_bytes,
        index_bytes: p.index_bytes,
        size_pretty: p.size_pretty,
        rls_enabled: p.rls_enabled,
        rls_forced: p.rls_forced,
        policies: p.policies.unwrap_or_default(),
        indexes: p.indexes.unwrap_or_default(),
        vector_null_frac: None,
        column_stats_hidden: false,
    };
    let _ = p.relkind;
    part
}

/// Parses `FOR VALUES FROM ('…') TO ('…')` of a single-column `timestamptz` range
/// partition. Values carry their UTC offset in whatever time zone the session had
/// (`+00`, `-05`, `+05:30`, `+13:45`), so the result is exact. `None` for MINVALUE or
/// MAXVALUE, or anything else that is not a pair of timestamps. Hand-written: the text is
/// `pg_get_expr`'s, a format of PostgreSQL's, not a general grammar a parser crate covers.
pub fn parse_range_bound(expr: &str) -> Option<PartitionBounds> {
    let rest = expr.trim().strip_prefix("FOR VALUES FROM (")?;
    let (from, rest) = rest.split_once(") TO (")?;
    let to = rest.strip_suffix(')')?;
    let from = parse_timestamptz(from.trim().strip_prefix('\'')?.strip_suffix('\'')?)?;
    let to = parse_timestamptz(to.trim().strip_prefix('\'')?.strip_suffix('\'')?)?;
    (from < to).then_some(PartitionBounds { from, to })
}

/// A `timestamptz` as PostgreSQL prints it with DateStyle ISO.
pub fn parse_timestamptz(s: &str) -> Option<DateTime<Utc>> {
    // Split off the offset: the last '+' or '-' after the time part.
    let t_pos = s.find(' ')?;
    let off_pos = s[t_pos..].rfind(['+', '-']).map(|i| i + t_pos)?;
    let (local, offset) = s.split_at(off_pos);
    let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let h: i32 = parts.next()?.parse().ok()?;
    let m: i32 = parts.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    let sec: i32 = parts.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
    let offset = FixedOffset::east_opt(sign * (h * 3600 + m * 60 + sec))?;
    let dt = local.and_local_timezone(offset).single()?;
    Some(dt.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_bounds_in_any_offset() {
        let utc = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        let b = parse_range_bound(
            "FOR VALUES FROM ('2026-05-01 00:00:00+00') TO ('2026-06-01 00:00:00+00')",
        )
        .unwrap();
        assert_eq!((b.from, b.to), (utc(2026, 5, 1), utc(2026, 6, 1)));
        let b = parse_range_bound(
            "FOR VALUES FROM ('2026-04-30 20:00:00-04') TO ('2026-05-31 20:00:00-04')",
        )
        .unwrap();
        assert_eq!((b.from, b.to), (utc(2026, 5, 1), utc(2026, 6, 1)));
        let b = parse_range_bound(
            "FOR VALUES FROM ('2026-11-01 13:45:00+13:45') TO ('2026-12-01 05:30:00+05:30')",
        )
        .unwrap();
        assert_eq!((b.from, b.to), (utc(2026, 11, 1), utc(2026, 12, 1)));
        let b = parse_range_bound(
            "FOR VALUES FROM ('2026-01-01 00:00:00.5+00') TO ('2026-01-02 00:00:00+00')",
        )
        .unwrap();
        assert_eq!(b.from.timestamp_subsec_millis(), 500);
    }

    #[test]
    fn rejects_what_is_not_a_finite_timestamp_range() {
        for e in [
            "DEFAULT",
            "FOR VALUES FROM (MINVALUE) TO ('2026-01-01 00:00:00+00')",
            "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO (MAXVALUE)",
            "FOR VALUES IN (1, 2)",
            "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-01-01 00:00:00+00')",
            "FOR VALUES FROM ('garbage') TO ('2026-01-01 00:00:00+00')",
        ] {
            assert_eq!(parse_range_bound(e), None, "{e}");
        }
    }
}
