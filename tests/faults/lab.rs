//! The fault lab: a private cluster (so it can be restarted) with a template database
//! whose one maintenance run holds every kind of action, copied afresh for each trial.
//!
//! Four managed tables, one for each retention path:
//! * `archon_ga4_events` — default partition, `drop` (plain DETACH + DROP in one
//!   transaction), an HNSW vector policy;
//! * `events_archive` — default partition, `archive`;
//! * `events_detach` — no default partition, `detach` (DETACH … CONCURRENTLY);
//! * `events_cdrop` — no default partition, `drop` (DETACH … CONCURRENTLY, then DROP).
//!
//! The work one run finds: next month's partition missing with its rows waiting in the
//! default partition (20,000 of them in `archon_ga4_events`, so the move takes a while),
//! two partitions past retention in every table (one of them left "detach pending" by an
//! interrupted DETACH … CONCURRENTLY), RLS drift on a partition that stays and on two that
//! expire, a parent index no partition has, an INVALID index to rebuild, and a partition
//! with enough embeddings for its vector index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use partwarden::calendar::{partition_name, Interval};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use crate::support::cluster::PrivateCluster;

pub const TENANTS: [&str; 2] = [
    "00000000-0000-0000-0000-00000000000a",
    "00000000-0000-0000-0000-00000000000b",
];

pub const TABLES: [&str; 5] = [
    "archon_ga4_events",
    "events_archive",
    "events_detach",
    "events_cdrop",
    "events_export",
];

/// Tables with a default partition (where next month's rows wait).
pub const WITH_DEFAULT: [&str; 2] = ["archon_ga4_events", "events_archive"];

pub const CONFIG: &str = r#"
[database]
lock_timeout = "1s"
ddl_backoff = "200ms"
ddl_attempts = 10

[[tables]]
name = "archon_ga4_events"
[tables.vector_index]
method = "hnsw"
min_rows = 1000

[[tables]]
name = "events_archive"
retention_mode = "archive"

[[tables]]
name = "events_detach"
retention_mode = "detach"
default_partition = false

[[tables]]
name = "events_cdrop"
default_partition = false

# Exported to a directory per trial database ([export] url from the environment,
# PARTWARDEN__EXPORT__URL, set by run.rs).
[[tables]]
name = "events_export"
retention_mode = "export"
default_partition = false
"#;

/// The start of the month `k` months from the current one.
pub fn month(k: i64) -> DateTime<Utc> {
    Interval::Month.shift(Interval::Month.floor(Utc::now()), k)
}

/// What the template holds, to check trials against.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    /// Rows per (table, tenant) outside the partitions that expire.
    pub live: BTreeMap<(String, String), i64>,
    /// Rows per (table, partition, tenant) of the partitions that expire.
    pub expiring: BTreeMap<(String, String, String), i64>,
}

pub struct Lab {
    pub cluster: PrivateCluster,
    pub seeded: Seeded,
    trials: u32,
}

pub struct TrialDb {
    pub name: String,
    pub port: u16,
}

impl TrialDb {
    pub fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{}", self.port, self.name)
    }
}

async fn pool(url: &str, n: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(n)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

impl Lab {
    pub async fn new() -> Lab {
        let cluster = PrivateCluster::primary("faults");
        cluster.bootstrap();
        let mut lab = Lab {
            cluster,
            seeded: Seeded::default(),
            trials: 0,
        };
        lab.build_template().await;
        lab
    }

    pub async fn admin(&self) -> PgPool {
        pool(&self.cluster.url("postgres", "postgres"), 2).await
    }

    async fn build_template(&mut self) {
        let admin = self.admin().await;
        admin
            .execute("CREATE DATABASE faults_template OWNER partwarden")
            .await
            .unwrap();
        let su = pool(&self.cluster.url("postgres", "faults_template"), 2).await;
        su.execute("CREATE EXTENSION vector").await.unwrap();
        // The vector policy counts vectors from column statistics (docs/operations.md).
        su.execute("GRANT SELECT ON pg_catalog.pg_statistic TO partwarden")
            .await
            .unwrap();
        let owner = pool(&self.cluster.url("partwarden", "faults_template"), 4).await;
        partwarden::engine::migrate::run(&owner)
            .await
            .expect("migrations");
        for t in &TABLES[1..] {
            owner
                .execute(
                    format!(
                        "CREATE TABLE {t} (LIKE archon_ga4_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
                           PARTITION BY RANGE (event_timestamp);
                         ALTER TABLE {t} ADD PRIMARY KEY (id, event_timestamp);
                         CREATE INDEX ON {t} (tenant_id, event_timestamp);
                         ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
                         ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
                         CREATE POLICY tenant ON {t}
                           USING (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid)
                           WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant_id', true), '')::uuid);"
                    )
                    .as_str(),
                )
                .await
                .unwrap();
        }
        // Every table gets its partitions (and default partitions) the normal way.
        let tpl = TrialDb {
            name: "faults_template".into(),
            port: self.cluster.port,
        };
        let run = crate::run::maintain(&tpl, &[], &["maintain"]).await;
        assert_eq!(run.code, 0, "template: {}", run.out);
        owner
            .execute(
                "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_user;
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_user;
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_user;",
            )
            .await
            .unwrap();
        self.add_work(&owner).await;
        self.add_superuser_work(&su, &owner).await;
        self.seeded = seeded(&owner).await;
        owner.close().await;
        su.close().await;
    }

    async fn add_work(&self, owner: &PgPool) {
        let next = month(1);
        // Next month's partition is missing; its rows wait in the default partition.
        for t in TABLES {
            let name = partition_name(t, Interval::Month, next);
            owner
                .execute(format!("DROP TABLE {name}").as_str())
                .await
                .unwrap();
        }
        for (t, n) in [("archon_ga4_events", 20_000), ("events_archive", 2_000)] {
            insert_rows(owner, t, next, n, false).await;
        }
        // Two partitions past retention in every table, with rows.
        for t in TABLES {
            for back in [30, 29] {
                let from = month(-back);
                let name = partition_name(t, Interval::Month, from);
                owner
                    .execute(
                        format!(
                            "CREATE TABLE {name} PARTITION OF {t} FOR VALUES FROM ('{}') TO ('{}');
                             SELECT partwarden_sync_partition_rls('{t}', '{name}');",
                            partwarden::calendar::sql_literal(from),
                            partwarden::calendar::sql_literal(month(-back + 1))
                        )
                        .as_str(),
                    )
                    .await
                    .unwrap();
                insert_rows(owner, t, from, 50, false).await;
            }
        }
        // RLS drift: a partition that stays, and two that expire (archive, detach).
        let drift = [
            format!(
                "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY",
                partition_name("archon_ga4_events", Interval::Month, month(0))
            ),
            format!(
                "CREATE POLICY open ON {} USING (true)",
                partition_name("events_archive", Interval::Month, month(-30))
            ),
            format!(
                "ALTER TABLE {} DISABLE ROW LEVEL SECURITY",
                partition_name("events_detach", Interval::Month, month(-29))
            ),
        ];
        for sql in drift {
            owner.execute(sql.as_str()).await.unwrap();
        }
        // A parent index no partition has yet.
        for t in ["archon_ga4_events", "events_detach"] {
            owner
                .execute(format!("CREATE INDEX {t}_session ON ONLY {t} (session_id)").as_str())
                .await
                .unwrap();
        }
        // Enough embeddings in the current month for its vector index.
        insert_rows(owner, "archon_ga4_events", month(0), 1_500, true).await;
        owner.execute("ANALYZE").await.unwrap();
    }

    /// Work only a superuser can set up: an INVALID index attached to the parent's (to be
    /// rebuilt with REINDEX CONCURRENTLY), and an expiring partition someone left "detach
    /// pending" (a DETACH … CONCURRENTLY cut off while a reader held the table).
    async fn add_superuser_work(&self, su: &PgPool, owner: &PgPool) {
        // (a partition with rows enough for the rebuild to take a moment)
        let cur = partition_name("archon_ga4_events", Interval::Month, month(-2));
        let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition($1)")
            .bind(month(-2).date_naive())
            .fetch_one(owner)
            .await
            .unwrap();
        insert_rows(owner, "archon_ga4_events", month(-2), 60_000, false).await;
        owner
            .execute(format!("ANALYZE {cur}").as_str())
            .await
            .unwrap();
        su.execute(
            format!(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid =
                   (SELECT i.indexrelid FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid
                     WHERE i.indrelid = '{cur}'::regclass
                       AND pg_get_indexdef(i.indexrelid) LIKE '%(tenant_id, event_timestamp DESC)%')"
            )
            .as_str(),
        )
        .await
        .unwrap();
        // (the parents' ON ONLY indexes are INVALID too until every partition has its own)
        let broken: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid AND c.relkind = 'i'",
        )
            .fetch_one(su)
            .await
            .unwrap();
        assert_eq!(broken, 1, "one INVALID index to repair");
        let pending = partition_name("events_cdrop", Interval::Month, month(-30));
        let mut reader = owner.begin().await.unwrap();
        sqlx::query("SELECT count(*) FROM events_cdrop")
            .execute(&mut *reader)
            .await
            .unwrap();
        let mut conn: sqlx::PgConnection =
            sqlx::Connection::connect(&self.cluster.url("partwarden", "faults_template"))
                .await
                .unwrap();
        conn.execute("SET lock_timeout = '300ms'").await.unwrap();
        let cut = conn
            .execute(
                format!("ALTER TABLE events_cdrop DETACH PARTITION {pending} CONCURRENTLY")
                    .as_str(),
            )
            .await;
        assert!(cut.is_err(), "the detach should be cut off");
        reader.commit().await.unwrap();
    }

    /// A fresh copy of the template.
    pub async fn trial_db(&mut self) -> TrialDb {
        self.trials += 1;
        let name = format!("faults_trial_{}", self.trials);
        let admin = self.admin().await;
        admin
            .execute(
                format!("CREATE DATABASE {name} TEMPLATE faults_template OWNER partwarden")
                    .as_str(),
            )
            .await
            .unwrap();
        admin.close().await;
        TrialDb {
            name,
            port: self.cluster.port,
        }
    }

    pub async fn drop_trial(&self, db: TrialDb) {
        let admin = self.admin().await;
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name).as_str())
            .await;
        admin.close().await;
        let _ = std::fs::remove_dir_all(crate::run::store_dir(&db));
    }
}

/// `n` rows in the month starting `from`, alternating tenants, optionally with embeddings.
async fn insert_rows(owner: &PgPool, table: &str, from: DateTime<Utc>, n: i32, vectors: bool) {
    for (k, tenant) in TENANTS.iter().enumerate() {
        let mut tx = owner.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .unwrap();
        let embedding = if vectors {
            "(SELECT array_agg(random()::real - 0.5) FROM generate_series(1, 768) WHERE g > 0)::vector"
        } else {
            "NULL"
        };
        sqlx::query(&format!(
            "INSERT INTO {table} (tenant_id, property_id, event_name, event_timestamp, embedding_768)
             SELECT $1::uuid, 'p', 'seed', $2 + make_interval(secs => g * 60 + $4), {embedding}
               FROM generate_series(1, $3) g"
        ))
        .bind(tenant)
        .bind(from)
        .bind(n / 2)
        .bind(k as i32)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn seeded(owner: &PgPool) -> Seeded {
    let mut s = Seeded::default();
    let keep_from = month(-28);
    for t in TABLES {
        for tenant in TENANTS {
            let mut tx = owner.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .unwrap();
            let live: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {t} WHERE event_timestamp >= $1 AND tenant_id = $2::uuid"
            ))
            .bind(keep_from)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            s.live.insert((t.to_string(), tenant.to_string()), live);
            for back in [30, 29] {
                let p = partition_name(t, Interval::Month, month(-back));
                // (explicitly by tenant: the drift makes some of these readable by all)
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {p} WHERE tenant_id = $1::uuid"
                ))
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                s.expiring.insert((t.to_string(), p, tenant.to_string()), n);
            }
            tx.commit().await.unwrap();
        }
    }
    s
}
