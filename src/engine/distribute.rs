//! `partwarden migrate --citus`: the GA4 schema distributed by Citus, on the coordinator.
//!
//! Citus requires the distribution column in every primary key and unique constraint, so
//! the events' key becomes `(tenant_id, id, event_timestamp)` and the daily summaries'
//! `(tenant_id, id)`; then `archon_ga4_events` is distributed by `tenant_id` (every
//! partition with it, colocated) and the summaries colocated with it, so a tenant's events
//! and summaries share a node. Idempotent: a table already distributed by `tenant_id` is
//! left as it is. One transaction: a refusal leaves the schema as it was.
//!
//! Distributing copies the rows already there to the shards under a lock that blocks
//! writes (Citus's own `create_distributed_table`): a step for a maintenance window, or
//! for a new, empty schema (docs/citus.md).

use sqlx::{Connection, PgPool};

use crate::error::Error;

/// (table, distribution column, the primary key it needs, colocated with)
const GA4_TABLES: [(&str, &str, &str, Option<&str>); 2] = [
    (
        "archon_ga4_events",
        "tenant_id",
        "tenant_id, id, event_timestamp",
        None,
    ),
    (
        "archon_ga4_daily_summaries",
        "tenant_id",
        "tenant_id, id",
        Some("archon_ga4_events"),
    ),
];

/// Refuses a database that cannot take the distribution: no citus extension, a worker
/// instead of the coordinator, no node that may hold shards. Called before the migrations
/// too: on a worker they would fail with Citus's "operation is not allowed on this node".
pub async fn check_cluster(pool: &PgPool) -> Result<(), Error> {
    let mut conn = pool.acquire().await.map_err(Error::Database)?;
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::Database)?;
    if !crate::catalog::citus::installed(&mut conn)
        .await
        .map_err(Error::Database)?
    {
        return Err(Error::Citus(format!(
            "the citus extension is not in database \"{database}\": a superuser runs \
             CREATE EXTENSION citus; in it on the coordinator and on every worker, and \
             registers the workers (SELECT citus_add_node(host, port)), then \
             `partwarden migrate --citus` again"
        )));
    }
    worker_refusal(&mut conn, &database).await?;
    let workers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND isactive AND shouldhaveshards",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::Database)?;
    if workers == 0 {
        return Err(Error::Citus(
            "no Citus node may hold shards (pg_dist_node has no active primary with \
             shouldhaveshards): add the workers first (SELECT citus_add_node(host, port))"
                .into(),
        ));
    }
    Ok(())
}

/// Refuses a Citus worker: the schema is made on the coordinator, which carries it to the
/// workers (a migration run on a worker fails with Citus's "operation is not allowed on
/// this node"). Nothing to refuse where Citus is not installed.
pub async fn refuse_worker(pool: &PgPool) -> Result<(), Error> {
    let mut conn = pool.acquire().await.map_err(Error::Database)?;
    if !crate::catalog::citus::installed(&mut conn)
        .await
        .map_err(Error::Database)?
    {
        return Ok(());
    }
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::Database)?;
    worker_refusal(&mut conn, &database).await
}

/// The refusal of [`refuse_worker`], on a connection to a database that has Citus.
async fn worker_refusal(conn: &mut sqlx::PgConnection, database: &str) -> Result<(), Error> {
    let coordinator: bool = sqlx::query_scalar("SELECT citus_is_coordinator()")
        .fetch_one(conn)
        .await
        .map_err(Error::Database)?;
    if coordinator {
        return Ok(());
    }
    Err(Error::Citus(format!(
        "database \"{database}\" here is on a Citus worker: run `partwarden migrate` \
         (and `migrate --citus`) against the coordinator, which carries the schema to the workers"
    )))
}

/// Distributes the GA4 tables; what was done, one line a table.
pub async fn distribute(pool: &PgPool, shard_count: Option<u32>) -> Result<Vec<String>, Error> {
    check_cluster(pool).await?;
    let mut conn = pool.acquire().await.map_err(Error::Database)?;
    let mut done = Vec::new();
    let mut tx = conn.begin().await.map_err(Error::Database)?;
    if let Some(n) = shard_count {
        sqlx::query("SELECT set_config('citus.shard_count', $1, true)")
            .bind(n.to_string())
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
    }
    for (table, column, key, colocate) in GA4_TABLES {
        let current: Option<Option<String>> = sqlx::query_scalar(
            "SELECT column_to_column_name(p.logicalrelid, p.partkey)
               FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass($1)",
        )
        .bind(table)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::Database)?;
        match current {
            Some(Some(c)) if c == column => {
                done.push(format!("{table}: already distributed by {column}"));
                continue;
            }
            Some(other) => {
                return Err(Error::Citus(format!(
                    "{table} is already in Citus's metadata, {}: partwarden distributes the \
                     GA4 tables by {column} only; undistribute it first \
                     (SELECT undistribute_table('{table}'))",
                    match other {
                        Some(c) => format!("distributed by {c}"),
                        None => "as a reference or local table".to_string(),
                    }
                )));
            }
            None => {}
        }
        let pk: Option<(String, String)> = sqlx::query_as(
            "SELECT quote_ident(con.conname),
                    (SELECT string_agg(a.attname, ', ' ORDER BY k.n)
                       FROM unnest(con.conkey) WITH ORDINALITY k(attnum, n)
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum)
               FROM pg_constraint con WHERE con.conrelid = to_regclass($1) AND con.contype = 'p'",
        )
        .bind(table)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::Database)?;
        let Some((pk_name, pk_columns)) = pk else {
            return Err(Error::Citus(format!(
                "{table} has no primary key: run `partwarden migrate` first"
            )));
        };
        if pk_columns != key {
            // DDL text from constants and the catalog's own quoting.
            sqlx::raw_sql(&format!(
                "ALTER TABLE {table} DROP CONSTRAINT {pk_name}, ADD PRIMARY KEY ({key})"
            ))
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
            done.push(format!(
                "{table}: primary key ({pk_columns}) -> ({key}): Citus needs {column} in it"
            ));
        }
        // Citus copies the rows with COPY FROM, which PostgreSQL refuses where row-level
        // security applies, as FORCE makes it apply to the owner: lifted for this
        // transaction only (its ALTERs hold ACCESS EXCLUSIVE until commit), then forced
        // again on the distributed tables, which carries it to every shard.
        let forced: Vec<String> = sqlx::query_scalar(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relforcerowsecurity
                AND (c.oid = to_regclass($1)
                     OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass($1)))
              ORDER BY c.oid = to_regclass($1) DESC, 1",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::Database)?;
        for rel in &forced {
            sqlx::raw_sql(&format!("ALTER TABLE {rel} NO FORCE ROW LEVEL SECURITY"))
                .execute(&mut *tx)
                .await
                .map_err(Error::Database)?;
        }
        sqlx::query("SELECT create_distributed_table($1, $2, colocate_with => $3)")
            .bind(table)
            .bind(column)
            .bind(colocate.unwrap_or("default"))
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
        // create_distributed_table copies the rows to the shards and leaves the
        // coordinator's copy (hidden, on disk): removed in the same transaction.
        sqlx::query("SELECT truncate_local_data_after_distributing_table($1)")
            .bind(table)
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
        for rel in &forced {
            sqlx::raw_sql(&format!("ALTER TABLE {rel} FORCE ROW LEVEL SECURITY"))
                .execute(&mut *tx)
                .await
                .map_err(Error::Database)?;
        }
        done.push(format!(
            "{table}: distributed by {column}{}",
            colocate.map_or(String::new(), |c| format!(", colocated with {c}"))
        ));
    }
    tx.commit().await.map_err(Error::Database)?;
    Ok(done)
}
