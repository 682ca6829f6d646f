//! Test databases on the throwaway cluster that `scripts/test.sh` starts.
//!
//! Each test gets its own database, so tests run in parallel: `TestDb::migrated()` copies a
//! template that the migrations were applied to once per cluster (by the maintenance role,
//! `partwarden`, a non-superuser), `TestDb::empty()` is a bare database with pgvector.
//! Without the cluster a test fails with the reason; it never skips.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub mod browser;
pub mod citus;
pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod fake_pg;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

pub const OWNER_ROLE: &str = "partwarden";
pub const APP_ROLE: &str = "app_user";
/// Renamed whenever what the template holds changes: a cluster keeps the one it built.
const TEMPLATE: &str = "pw_template_migrated_citus_stats";

pub fn admin_url() -> String {
    std::env::var("PW_TEST_ADMIN_URL").unwrap_or_else(|_| {
        panic!(
            "PW_TEST_ADMIN_URL is not set. The database tests run against the throwaway \
             PostgreSQL 18 + pgvector that scripts/test.sh installs and starts: run \
             `scripts/test.sh` (extra cargo test arguments after `--`), or export \
             PW_TEST_ADMIN_URL=postgres://postgres@127.0.0.1:PORT/postgres and PW_TEST_PG_BIN."
        )
    })
}

/// The directory with psql, pg_ctl… of the test cluster.
pub fn pg_bin() -> PathBuf {
    PathBuf::from(std::env::var("PW_TEST_PG_BIN").unwrap_or_else(|_| {
        panic!("PW_TEST_PG_BIN is not set: run the tests through scripts/test.sh")
    }))
}

/// `url` with its user and database replaced.
pub fn url_for(user: &str, db: &str) -> String {
    let admin = admin_url();
    let rest = admin
        .split_once('@')
        .map(|(_, r)| r)
        .expect("admin url has user@host");
    let hostport = rest.split('/').next().unwrap();
    format!("postgres://{user}@{hostport}/{db}")
}

async fn admin_conn(db: &str) -> PgConnection {
    PgConnection::connect(&url_for("postgres", db))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster at {}: {e}", admin_url()))
}

fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    format!("pw_{clean}_{}_{n}", std::process::id())
}

pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// A fresh database owned by the maintenance role, with pgvector created (a superuser
    /// step: the extension is not trusted) and nothing else.
    pub async fn empty(label: &str) -> TestDb {
        let db = TestDb::bare(label).await;
        let mut su = admin_conn(&db.name).await;
        superuser_setup(&mut su).await;
        db
    }

    /// A fresh database owned by the maintenance role, before the superuser's setup: no
    /// pgvector, no `pg_statistic` grant.
    pub async fn bare(label: &str) -> TestDb {
        let name = unique_name(label);
        let mut admin = admin_conn("postgres").await;
        admin
            .execute(format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}").as_str())
            .await
            .expect("create test database");
        TestDb { name }
    }

    /// A fresh copy of a database the migrations were applied to.
    pub async fn migrated(label: &str) -> TestDb {
        ensure_template().await;
        let name = unique_name(label);
        let mut admin = admin_conn("postgres").await;
        admin
            .execute(
                format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE} OWNER {OWNER_ROLE}").as_str(),
            )
            .await
            .expect("create test database from template");
        TestDb { name }
    }

    pub fn owner_url(&self) -> String {
        url_for(OWNER_ROLE, &self.name)
    }
    pub fn app_url(&self) -> String {
        url_for(APP_ROLE, &self.name)
    }
    pub fn superuser_url(&self) -> String {
        url_for("postgres", &self.name)
    }

    pub async fn owner_pool(&self) -> PgPool {
        pool(&self.owner_url()).await
    }
    pub async fn app_pool(&self) -> PgPool {
        pool(&self.app_url()).await
    }
    pub async fn superuser_pool(&self) -> PgPool {
        pool(&self.superuser_url()).await
    }

    /// Runs `psql -f file` as `user` against this database; returns (success, stdout+stderr).
    pub fn psql_file(&self, user: &str, file: &std::path::Path) -> (bool, String) {
        let out = std::process::Command::new(pg_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &url_for(user, &self.name),
                "-f",
            ])
            .arg(file)
            .output()
            .expect("run psql");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// What a superuser does once in a database for partwarden (docs/operations.md): create
/// pgvector (not a trusted extension), and let the maintenance role read the column
/// statistics that count a partition's vectors (pg_stats hides them under forced RLS).
pub async fn superuser_setup(su: &mut PgConnection) {
    su.execute("CREATE EXTENSION IF NOT EXISTS vector")
        .await
        .expect("create extension vector");
    su.execute(format!("GRANT SELECT ON pg_catalog.pg_statistic TO {OWNER_ROLE}").as_str())
        .await
        .expect("grant pg_statistic");
}

pub async fn pool(url: &str) -> PgPool {
    pool_sized(url, 4).await
}

/// A pool of up to `n` connections (concurrent writers need one each).
pub async fn pool_sized(url: &str, n: u32) -> PgPool {
    let opts: PgConnectOptions = url.parse().expect("test url");
    PgPoolOptions::new()
        .max_connections(n)
        .connect_with(opts)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// Builds the migrated template once per cluster; parallel test processes wait on an
/// advisory lock.
async fn ensure_template() {
    let mut admin = admin_conn("postgres").await;
    admin
        .execute("SELECT pg_advisory_lock(7_420_001)")
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(TEMPLATE)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{TEMPLATE}_building");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {building}").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {building} OWNER {OWNER_ROLE}").as_str())
            .await
            .unwrap();
        {
            let mut su = admin_conn(&building).await;
            superuser_setup(&mut su).await;
            su.close().await.unwrap();
        }
        {
            let owner = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url_for(OWNER_ROLE, &building))
                .await
                .unwrap();
            partwarden::engine::migrate::run(&owner)
                .await
                .expect("migrations apply to the template");
            owner.close().await;
        }
        admin
            .execute(format!("ALTER DATABASE {building} RENAME TO {TEMPLATE}").as_str())
            .await
            .unwrap();
    }
    admin
        .execute("SELECT pg_advisory_unlock(7_420_001)")
        .await
        .unwrap();
}

/// A transaction with the tenant set (RLS is forced: even the owner needs it).
pub async fn tenant_tx(pool: &PgPool, tenant: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// A long reader: a transaction that has read the whole table, so it holds ACCESS SHARE
/// on the parent and every partition (the default partition included) until it ends.
pub async fn hold_reader(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = tenant_tx(pool, "00000000-0000-0000-0000-00000000000a").await;
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM archon_ga4_events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The partitions of `archon_ga4_events`, as `regclass` prints them, in order.
pub async fn partitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'archon_ga4_events'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Drops the partitions of `archon_ga4_events` that start in the future (the three the
/// migration made), so that a maintenance run has DDL to do; returns their names.
pub async fn drop_future_partitions(pool: &PgPool) -> Vec<String> {
    use sqlx::Executor;
    let future: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          CROSS JOIN LATERAL partwarden_range_bounds(c.oid) b
         WHERE i.inhparent = 'archon_ga4_events'::regclass AND b.range_start > now() ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(future.len(), 3);
    for p in &future {
        pool.execute(format!("DROP TABLE {p}").as_str())
            .await
            .unwrap();
    }
    future
}

/// (tenant, partition) of every event of `tenants`, read tenant by tenant (RLS is forced),
/// in timestamp order per tenant.
pub async fn rows_by_partition(pool: &PgPool, tenants: &[&str]) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for t in tenants {
        let mut tx = tenant_tx(pool, t).await;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT tenant_id::text, tableoid::regclass::text FROM archon_ga4_events ORDER BY event_timestamp",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        all.extend(rows);
        tx.commit().await.unwrap();
    }
    all
}
