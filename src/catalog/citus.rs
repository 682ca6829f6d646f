//! A table Citus distributes: how it is distributed, and what its partitions hold on the
//! workers. On the coordinator a distributed partition is a shell: its `pg_class.reltuples`
//! stays 0 and its relation size is that of empty files; the rows, their sizes and their
//! statistics are on the shards. So a snapshot of a distributed table reads them from every
//! node (one round trip: `run_command_on_all_nodes`) and puts each partition's totals where
//! the planner, `status` and the metrics read a plain table's.
//!
//! Whatever partwarden does not maintain on Citus is refused here, naming why: a table that
//! is a reference table, a Citus local table or append/range distributed, and a connection
//! to a worker instead of the coordinator.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{Partition, TableSnapshot};
use crate::error::Error;

/// How Citus distributes the parent (`pg_dist_partition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    /// The distribution column (every partition's too).
    pub column: String,
    pub colocation_id: i32,
    /// Shards of the parent (each partition has as many, colocated).
    pub shard_count: i64,
    /// The nodes the shards are placed on.
    pub nodes: i64,
}

/// Whether the database has Citus at all: one cheap catalog lookup, no Citus function.
pub async fn installed(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL")
        .fetch_one(conn)
        .await
}

/// Reads the parent's distribution and overlays the partitions' rows, sizes, index
/// validity and — for `vector_column` — the column's NULL fraction from their shards
/// (`statistic_readable`: the role may read `pg_statistic`, as on a plain table). A table
/// Citus does not know is left as it is (`citus: None`); returns whether it is distributed.
pub async fn read(
    conn: &mut PgConnection,
    snap: &mut TableSnapshot,
    vector_column: Option<&str>,
    statistic_readable: bool,
) -> Result<bool, Error> {
    let label = snap.label();
    let refuse = |message: String| Error::Catalog {
        table: label.clone(),
        message,
    };
    let row: Option<MetadataRow> = sqlx::query_as(
        "SELECT p.partmethod::text AS method, p.repmodel::text AS repmodel,
                column_to_column_name(p.logicalrelid, p.partkey) AS column,
                p.colocationid AS colocation_id,
                (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid) AS shard_count,
                (SELECT count(DISTINCT pl.groupid) FROM pg_dist_shard s
                   JOIN pg_dist_placement pl ON pl.shardid = s.shardid
                  WHERE s.logicalrelid = p.logicalrelid) AS nodes,
                citus_is_coordinator() AS coordinator
           FROM pg_dist_partition p WHERE p.logicalrelid = $1::bigint::oid",
    )
    .bind(snap.oid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(MetadataRow {
        method,
        repmodel,
        column,
        colocation_id,
        shard_count,
        nodes,
        coordinator,
    }) = row
    else {
        return Ok(false);
    };
    if !coordinator {
        return Err(refuse(
            "this is a Citus worker node: DDL on a distributed table runs on the coordinator. \
             Point partwarden's database URL at the coordinator"
                .into(),
        ));
    }
    let kind = match (method.as_str(), repmodel.as_str()) {
        ("h", _) => None,
        ("n", "t") => Some("a Citus reference table"),
        ("n", _) if column.is_none() && shard_count <= 1 => Some(
            "a Citus local or single-shard table (citus_add_local_table_to_metadata or a \
             distributed schema)",
        ),
        ("a", _) => Some("append-distributed by Citus"),
        ("r", _) => Some("range-distributed by Citus"),
        _ => Some("distributed by Citus in a way partwarden does not know"),
    };
    if let Some(kind) = kind {
        return Err(refuse(format!(
            "{label} is {kind}: partwarden maintains hash-distributed tables \
             (create_distributed_table(table, column)) and plain tables only"
        )));
    }
    let Some(column) = column else {
        return Err(refuse(format!(
            "{label} is hash-distributed but Citus names no distribution column"
        )));
    };
    snap.citus = Some(Distribution {
        column,
        colocation_id,
        shard_count,
        nodes,
    });
    overlay_shards(conn, snap, vector_column, statistic_readable).await?;
    Ok(true)
}

/// The parent's row of `pg_dist_partition`, with its shards and this node's role.
#[derive(sqlx::FromRow)]
struct MetadataRow {
    method: String,
    repmodel: String,
    column: Option<String>,
    colocation_id: i32,
    shard_count: i64,
    nodes: i64,
    coordinator: bool,
}

/// What one shard of a partition holds, as its node reports it.
#[derive(Debug, Deserialize)]
struct ShardStats {
    /// Shard id: a shard replicated on two nodes is counted once.
    s: i64,
    /// The partition's name (the logical relation's `relname`).
    n: String,
    /// `reltuples` (-1 before the shard was first analyzed).
    t: f64,
    h: i64,
    x: i64,
    i: i64,
    /// Indexes of the shard that are INVALID, by the shell index's name.
    #[serde(default)]
    bad: Vec<String>,
    /// The vector column's `null_frac` on this shard, when it has statistics.
    #[serde(default)]
    nf: Option<f64>,
}

/// Each node lists its shards of the parent's partitions (`shard_name` maps a shard to its
/// table, so long names Citus shortened with a hash are found too); the coordinator sums
/// them per partition.
const SHARDS_ON_NODE: &str = r#"
SELECT coalesce(json_agg(json_build_object(
         's', sh.shardid, 'n', c.relname, 't', sc.reltuples,
         'h', pg_relation_size(sc.oid), 'x', pg_total_relation_size(sc.oid), 'i', pg_indexes_size(sc.oid),
         'nf', NULL_FRAC,
         'bad', (SELECT coalesce(json_agg(pi.relname), '[]')
                   FROM pg_index si
                   JOIN pg_index pix ON pix.indrelid = c.oid
                   JOIN pg_class pi ON pi.oid = pix.indexrelid
                  WHERE si.indrelid = sc.oid AND NOT si.indisvalid
                    AND si.indexrelid = to_regclass(shard_name(pix.indexrelid::regclass, sh.shardid)))
       )), '[]')
  FROM pg_inherits inh
  JOIN pg_class c ON c.oid = inh.inhrelid
  JOIN pg_dist_shard sh ON sh.logicalrelid = c.oid
  JOIN pg_class sc ON sc.oid = to_regclass(shard_name(c.oid, sh.shardid))
 WHERE inh.inhparent = %1$L::regclass
"#;

/// The vector column's NULL fraction on a shard `sc` (of the partition `c`): from
/// `pg_statistic` where the role may read it, else `pg_stats` (which hides a table under
/// forced row-level security from its owner, as on a plain table).
const NULL_FRAC_FROM_PG_STATISTIC: &str = "(SELECT st.stanullfrac::float8 FROM pg_statistic st
    JOIN pg_attribute a ON a.attrelid = st.starelid AND a.attnum = st.staattnum
   WHERE st.starelid = sc.oid AND a.attname = %2$L AND NOT st.stainherit)";
const NULL_FRAC_FROM_PG_STATS: &str = "(SELECT s.null_frac::float8 FROM pg_stats s
   WHERE s.schemaname = sc.relnamespace::regnamespace::text AND s.tablename = sc.relname
     AND s.attname = %2$L AND NOT s.inherited)";

async fn overlay_shards(
    conn: &mut PgConnection,
    snap: &mut TableSnapshot,
    vector_column: Option<&str>,
    statistic_readable: bool,
) -> Result<(), Error> {
    let null_frac = if statistic_readable {
        NULL_FRAC_FROM_PG_STATISTIC
    } else {
        NULL_FRAC_FROM_PG_STATS
    };
    let on_node = SHARDS_ON_NODE.replace("NULL_FRAC", null_frac);
    let parent = format!(
        "{}.{}",
        crate::ident::quote_ident(&snap.schema),
        crate::ident::quote_ident(&snap.name)
    );
    let answers: Vec<(i32, bool, Option<String>)> = sqlx::query_as(
        "SELECT nodeid, success, result FROM run_command_on_all_nodes(format($1, $2::text, $3::text))",
    )
    .bind(&on_node)
    .bind(&parent)
    .bind(vector_column)
    .fetch_all(&mut *conn)
    .await?;
    let mut seen = std::collections::HashSet::new();
    let mut by_partition: HashMap<String, Totals> = HashMap::new();
    for (node, ok, result) in answers {
        let text = result.unwrap_or_default();
        if !ok {
            return Err(Error::Catalog {
                table: snap.label(),
                message: format!(
                    "Citus node {node} could not report its shards (is its metadata synced? \
                     citus.enable_metadata_sync): {text}"
                ),
            });
        }
        let shards: Vec<ShardStats> = serde_json::from_str(&text).map_err(|e| Error::Catalog {
            table: snap.label(),
            message: format!("unexpected answer from Citus node {node}: {e}"),
        })?;
        for s in shards {
            if seen.insert(s.s) {
                by_partition.entry(s.n.clone()).or_default().add(&s);
            }
        }
    }
    let mut sized = Vec::new();
    for p in snap
        .partitions
        .iter_mut()
        .chain(snap.default_partition.iter_mut())
    {
        if let Some(t) = by_partition.get(&p.name) {
            t.apply(p);
            p.column_stats_hidden =
                vector_column.is_some() && !statistic_readable && p.vector_null_frac.is_none();
            sized.push(p.total_bytes);
        }
    }
    // The server's own rendering of the sums (status prints it beside a plain table's).
    let pretty: Vec<String> = sqlx::query_scalar(
        "SELECT pg_size_pretty(b) FROM unnest($1::int8[]) WITH ORDINALITY u(b, n) ORDER BY n",
    )
    .bind(&sized)
    .fetch_all(&mut *conn)
    .await?;
    let mut pretty = pretty.into_iter();
    for p in snap
        .partitions
        .iter_mut()
        .chain(snap.default_partition.iter_mut())
    {
        if by_partition.contains_key(&p.name) {
            p.size_pretty = pretty.next().unwrap_or_default();
        }
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    rows: f64,
    /// Some shard was never analyzed: the total is unknown unless its heap is empty.
    unknown: bool,
    heap: i64,
    total: i64,
    indexes: i64,
    bad: Vec<String>,
    /// Σ null_frac × reltuples over the shards with statistics, and whether every shard
    /// holding rows has them.
    null_rows: f64,
    stats_missing: bool,
}

impl Totals {
    fn add(&mut self, s: &ShardStats) {
        if s.t >= 0.0 {
            self.rows += s.t;
        } else if s.h > 0 {
            self.unknown = true;
        }
        match s.nf {
            Some(nf) => self.null_rows += nf * s.t.max(0.0),
            None if s.h > 0 => self.stats_missing = true,
            None => {}
        }
        self.heap += s.h;
        self.total += s.x;
        self.indexes += s.i;
        for b in &s.bad {
            if !self.bad.contains(b) {
                self.bad.push(b.clone());
            }
        }
    }

    fn apply(&self, p: &mut Partition) {
        p.rows_estimate = if self.unknown { -1.0 } else { self.rows };
        p.heap_bytes = self.heap;
        p.total_bytes = self.total;
        p.index_bytes = self.indexes;
        p.vector_null_frac = if self.stats_missing || self.unknown {
            None
        } else if self.rows > 0.0 {
            Some(self.null_rows / self.rows)
        } else {
            Some(0.0)
        };
        // An index valid on the coordinator but not on some shard is not valid: the
        // planner rebuilds it through the coordinator, which rebuilds every shard's.
        for idx in &mut p.indexes {
            if self.bad.contains(&idx.name) {
                idx.valid = false;
            }
        }
    }
}
