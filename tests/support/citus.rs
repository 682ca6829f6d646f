//! Databases on the throwaway Citus cluster that `scripts/test-citus.sh` starts (a
//! coordinator and two workers, `scripts/citus.sh`). Each test gets its own database on
//! every node, with citus and vector created by the superuser and the workers registered
//! on the coordinator. Without the cluster a test fails saying so; it never skips.
#![allow(dead_code)]

use sqlx::{Connection, Executor, PgConnection, PgPool};

use super::{pool, unique_name, OWNER_ROLE};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. The Citus suite runs against the coordinator and two workers \
             that scripts/test-citus.sh builds (from CITUS_SRC, a Citus source tarball or \
             directory) and starts: CITUS_SRC=../shared/vendor/citus-15.0devel-a3d5708.tar.gz \
             scripts/test-citus.sh"
        )
    })
}

/// The coordinator's admin URL (postgres@…/postgres).
pub fn coordinator_admin() -> String {
    env("PW_TEST_CITUS_COORDINATOR_URL")
}

/// The workers' admin URLs.
pub fn worker_admins() -> Vec<String> {
    env("PW_TEST_CITUS_WORKER_URLS")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `host:port` of a URL.
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let hp = rest.split('/').next().unwrap();
    let (h, p) = hp.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// `url` with its user and database replaced.
pub fn url_with(url: &str, user: &str, db: &str) -> String {
    let (h, p) = host_port(url);
    format!("postgres://{user}@{h}:{p}/{db}")
}

pub struct CitusDb {
    pub name: String,
}

impl CitusDb {
    /// A database on every node: owned by the maintenance role, citus and vector created,
    /// `pg_statistic` readable by it (docs/citus.md: what a superuser does once per node),
    /// the workers registered on the coordinator.
    pub async fn empty(label: &str) -> CitusDb {
        let _one_at_a_time = SetupLock::take().await;
        CitusDb::create(label).await
    }

    async fn create(label: &str) -> CitusDb {
        let name = unique_name(label);
        let nodes: Vec<String> = std::iter::once(coordinator_admin())
            .chain(worker_admins())
            .collect();
        for node in &nodes {
            let mut admin = PgConnection::connect(node)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the Citus node {node}: {e}"));
            admin
                .execute(format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}").as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
            let mut su = PgConnection::connect(&url_with(node, "postgres", &name))
                .await
                .unwrap();
            // Tenant isolation on Citus: the policy runs on the workers, which see a
            // `SET LOCAL app.current_tenant_id` only when the coordinator propagates it
            // (docs/citus.md); set_config() is never propagated.
            su.execute(
                format!(
                    "CREATE EXTENSION citus; CREATE EXTENSION vector; \
                     GRANT SELECT ON pg_catalog.pg_statistic TO {OWNER_ROLE}; \
                     ALTER DATABASE {name} SET citus.propagate_set_commands = 'local'"
                )
                .as_str(),
            )
            .await
            .unwrap();
            su.close().await.unwrap();
        }
        let mut su = PgConnection::connect(&url_with(&coordinator_admin(), "postgres", &name))
            .await
            .unwrap();
        let (h, p) = host_port(&coordinator_admin());
        sqlx::query("SELECT citus_set_coordinator_host($1, $2)")
            .bind(&h)
            .bind(p as i32)
            .execute(&mut su)
            .await
            .unwrap();
        for w in worker_admins() {
            let (h, p) = host_port(&w);
            sqlx::query("SELECT citus_add_node($1, $2)")
                .bind(&h)
                .bind(p as i32)
                .execute(&mut su)
                .await
                .unwrap();
        }
        su.close().await.unwrap();
        CitusDb { name }
    }

    /// The GA4 schema migrated and distributed by `partwarden migrate --citus` (the
    /// library calls the binary makes), with `shards` shards a table.
    pub async fn distributed(label: &str, shards: u32) -> CitusDb {
        let _one_at_a_time = SetupLock::take().await;
        let db = CitusDb::create(label).await;
        let owner = db.owner_pool().await;
        partwarden::engine::migrate::run(&owner)
            .await
            .expect("migrations on the coordinator");
        partwarden::engine::distribute::distribute(&owner, Some(shards))
            .await
            .expect("migrate --citus");
        owner.close().await;
        db
    }

    pub fn url(&self, user: &str) -> String {
        url_with(&coordinator_admin(), user, &self.name)
    }
    pub fn owner_url(&self) -> String {
        self.url(OWNER_ROLE)
    }
    pub fn worker_url(&self, i: usize, user: &str) -> String {
        url_with(&worker_admins()[i], user, &self.name)
    }
    pub async fn owner_pool(&self) -> PgPool {
        pool(&self.owner_url()).await
    }
    pub async fn superuser_pool(&self) -> PgPool {
        pool(&self.url("postgres")).await
    }
    pub async fn worker_pool(&self, i: usize, user: &str) -> PgPool {
        pool(&self.worker_url(i, user)).await
    }
}

/// Test databases are set up one at a time across the test processes: Citus makes sure
/// the owner role exists on every worker whenever it creates a distributed object, and two
/// databases doing that at once collide on the shared role catalog ("tuple concurrently
/// updated"). An operator runs `migrate --citus` once; tests run in parallel after setup.
struct SetupLock(PgConnection);

impl SetupLock {
    async fn take() -> SetupLock {
        let mut conn = PgConnection::connect(&coordinator_admin())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the Citus coordinator: {e}"));
        conn.execute("SELECT pg_advisory_lock(7420002)")
            .await
            .unwrap();
        SetupLock(conn)
    }
}

/// `sql` (with `%1$s` for the shard's name) on every placement of every shard of `rel`,
/// through the coordinator: (node port, shard id, result).
pub async fn on_placements(pool: &PgPool, rel: &str, sql: &str) -> Vec<(i32, i64, String)> {
    let rows: Vec<(i32, i64, bool, String)> = sqlx::query_as(
        "SELECT nodeport, shardid, success, result FROM run_command_on_placements($1::regclass, $2) ORDER BY shardid",
    )
    .bind(rel)
    .bind(sql)
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("run_command_on_placements({rel}): {e}"));
    for (port, shard, ok, result) in &rows {
        assert!(ok, "shard {shard} on port {port}: {result}");
    }
    rows.into_iter().map(|(p, s, _, r)| (p, s, r)).collect()
}

/// Every partition of `parent` as Citus has it: (partition, colocation id, shard count,
/// distribution column), by name.
pub async fn distributed_partitions(
    pool: &PgPool,
    parent: &str,
) -> Vec<(String, i32, i64, String)> {
    sqlx::query_as(
        "SELECT c.relname::text, p.colocationid, (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = c.oid),
                column_to_column_name(p.logicalrelid, p.partkey)
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
          WHERE i.inhparent = $1::regclass ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// (colocation id, shard count) of `rel`.
pub async fn distribution(pool: &PgPool, rel: &str) -> (i32, i64) {
    sqlx::query_as(
        "SELECT p.colocationid, (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = p.logicalrelid)
           FROM pg_dist_partition p WHERE p.logicalrelid = $1::regclass",
    )
    .bind(rel)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("{rel} is not in pg_dist_partition: {e}"))
}

/// A transaction with the tenant set as an application on Citus must set it: `SET LOCAL`,
/// which the coordinator propagates to the workers (`citus.propagate_set_commands`).
pub async fn tenant_tx(pool: &PgPool, tenant: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let tenant: uuid::Uuid = tenant.parse().expect("a tenant is a uuid");
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(&format!("SET LOCAL app.current_tenant_id = '{tenant}'"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Inserts `n` events of `tenant` from `from`, one a second, through the coordinator; with
/// a random 768-d embedding when `vectors`. As the superuser: Citus runs an INSERT … SELECT
/// as a COPY into the shards, which PostgreSQL refuses where row-level security applies.
pub async fn insert_events(
    pool: &PgPool,
    tenant: &str,
    from: chrono::DateTime<chrono::Utc>,
    n: i32,
    vectors: bool,
) {
    let mut tx = super::tenant_tx(pool, tenant).await;
    sqlx::query(
        "INSERT INTO archon_ga4_events (tenant_id, property_id, event_name, event_timestamp, embedding_768)
         SELECT $1::uuid, 'p', 'e', $2 + g * interval '1 second',
                CASE WHEN $4 THEN (SELECT array_agg(random())::real[] FROM generate_series(1, 768) WHERE g > 0)::vector(768) END
           FROM generate_series(1, $3) g",
    )
    .bind(tenant)
    .bind(from)
    .bind(n)
    .bind(vectors)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}
