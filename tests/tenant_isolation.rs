//! Tenant isolation by forced row-level security, for an application role and for the
//! table owner, through the parent and through each partition directly.
mod support;

use chrono::{DateTime, Utc};
use sqlx::{Executor, PgPool};
use support::{partitions, TestDb};

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";

/// Runs `sql` in a transaction with the tenant set to `tenant` (None: never set).
async fn as_tenant(
    pool: &PgPool,
    tenant: Option<&str>,
    sql: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await?;
    }
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows)
}

fn insert_event(tenant: &str, at: DateTime<Utc>, into: &str) -> String {
    format!(
        "INSERT INTO {into} (tenant_id, property_id, event_name, event_timestamp)
         VALUES ('{tenant}', 'prop', 'page_view', '{}') RETURNING tenant_id::text",
        at.format("%Y-%m-%d %H:%M:%S+00")
    )
}

fn insert_summary(tenant: &str, day: &str) -> String {
    format!(
        "INSERT INTO archon_ga4_daily_summaries (tenant_id, property_id, date, total_sessions)
         VALUES ('{tenant}', 'prop', '{day}', 1) RETURNING tenant_id::text"
    )
}

async fn grant_app(db: &TestDb) {
    let owner = db.owner_pool().await;
    owner
        .execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_user;
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_user;",
        )
        .await
        .unwrap();
}

async fn seed_two_tenants(pool: &PgPool, now: DateTime<Utc>) {
    let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 2099, 1, 1, 0, 0, 0).unwrap();
    for (t, at) in [(A, now), (B, now), (A, far), (B, far)] {
        as_tenant(pool, Some(t), &insert_event(t, at, "archon_ga4_events"))
            .await
            .unwrap();
    }
    as_tenant(pool, Some(A), &insert_summary(A, "2026-01-01"))
        .await
        .unwrap();
    as_tenant(pool, Some(B), &insert_summary(B, "2026-01-01"))
        .await
        .unwrap();
}

/// Everything one role must and must not be able to do.
async fn assert_isolated(pool: &PgPool, who: &str) {
    let now = Utc::now();
    let tables = {
        let mut t = vec![
            "archon_ga4_events".to_string(),
            "archon_ga4_daily_summaries".to_string(),
        ];
        t.extend(partitions(pool).await);
        t
    };
    for table in &tables {
        let select = format!("SELECT tenant_id::text FROM {table}");
        // Tenant A sees only A's rows.
        let seen = as_tenant(pool, Some(A), &select).await.unwrap();
        assert!(
            seen.iter().all(|t| t == A),
            "{who} as A on {table}: {seen:?}"
        );
        // No tenant, or the empty tenant, sees nothing.
        assert_eq!(
            as_tenant(pool, None, &select).await.unwrap(),
            Vec::<String>::new(),
            "{who} unset on {table}"
        );
        assert_eq!(
            as_tenant(pool, Some(""), &select).await.unwrap(),
            Vec::<String>::new(),
            "{who} '' on {table}"
        );
    }
    // A sees its own rows through the parent: two events, one summary.
    assert_eq!(
        as_tenant(
            pool,
            Some(A),
            "SELECT tenant_id::text FROM archon_ga4_events"
        )
        .await
        .unwrap()
        .len(),
        2,
        "{who}"
    );
    assert_eq!(
        as_tenant(
            pool,
            Some(A),
            "SELECT tenant_id::text FROM archon_ga4_daily_summaries"
        )
        .await
        .unwrap()
        .len(),
        1
    );

    let month = partwarden::calendar::partition_name(
        "archon_ga4_events",
        partwarden::calendar::Interval::Month,
        partwarden::calendar::Interval::Month.floor(now),
    );
    for into in [
        "archon_ga4_events",
        month.as_str(),
        "archon_ga4_events_default",
    ] {
        let at = if into.ends_with("default") {
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2098, 1, 1, 0, 0, 0).unwrap()
        } else {
            now
        };
        // Inserting another tenant's row fails, through the parent and directly.
        let err = as_tenant(pool, Some(A), &insert_event(B, at, into))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row-level security"),
            "{who} insert B into {into} as A: {err}"
        );
        for tenant in [None, Some("")] {
            let err = as_tenant(pool, tenant, &insert_event(A, at, into))
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("row-level security"),
                "{who} insert without tenant into {into}: {err}"
            );
        }
    }
    // Moving one's own row to another tenant fails.
    let err = as_tenant(
        pool,
        Some(A),
        &format!("UPDATE archon_ga4_events SET tenant_id = '{B}' RETURNING tenant_id::text"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row-level security"),
        "{who} update events: {err}"
    );
    let err = as_tenant(
        pool,
        Some(A),
        &format!(
            "UPDATE archon_ga4_daily_summaries SET tenant_id = '{B}' RETURNING tenant_id::text"
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row-level security"),
        "{who} update summaries: {err}"
    );
    // Updating or deleting another tenant's rows touches nothing.
    let n = as_tenant(
        pool,
        Some(A),
        &format!("DELETE FROM archon_ga4_events WHERE tenant_id = '{B}' RETURNING tenant_id::text"),
    )
    .await
    .unwrap();
    assert!(n.is_empty(), "{who} deleted B's rows: {n:?}");
    let err = as_tenant(pool, Some(A), &insert_summary(B, "2026-02-02"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row-level security"),
        "{who} summary for B: {err}"
    );
}

#[tokio::test]
async fn an_application_role_sees_only_its_tenant_everywhere() {
    let db = TestDb::migrated("rls_app").await;
    grant_app(&db).await;
    let app = db.app_pool().await;
    seed_two_tenants(&app, Utc::now()).await;
    assert_isolated(&app, "app_user").await;
    // B's rows are still there (seen as B).
    let b = as_tenant(
        &app,
        Some(B),
        "SELECT tenant_id::text FROM archon_ga4_events",
    )
    .await
    .unwrap();
    assert_eq!(b, vec![B.to_string(), B.to_string()]);
}

#[tokio::test]
async fn the_table_owner_is_isolated_too_because_rls_is_forced() {
    let db = TestDb::migrated("rls_owner").await;
    let owner = db.owner_pool().await;
    seed_two_tenants(&owner, Utc::now()).await;
    assert_isolated(&owner, "owner").await;
}

#[tokio::test]
async fn partitions_made_later_by_the_sql_functions_carry_the_same_policies() {
    let db = TestDb::migrated("rls_later").await;
    let owner = db.owner_pool().await;
    let _: String = sqlx::query_scalar("SELECT create_ga4_events_partition('2040-02-01')")
        .fetch_one(&owner)
        .await
        .unwrap();
    grant_app(&db).await;
    let app = db.app_pool().await;
    let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2040, 2, 3, 0, 0, 0).unwrap();
    as_tenant(&app, Some(A), &insert_event(A, at, "archon_ga4_events"))
        .await
        .unwrap();
    as_tenant(&app, Some(B), &insert_event(B, at, "archon_ga4_events"))
        .await
        .unwrap();
    let seen = as_tenant(
        &app,
        Some(A),
        "SELECT tenant_id::text FROM archon_ga4_events_2040_02",
    )
    .await
    .unwrap();
    assert_eq!(seen, vec![A.to_string()]);
    let policies: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT polname::text, pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
           FROM pg_policy WHERE polrelid IN ('archon_ga4_events'::regclass, 'archon_ga4_events_2040_02'::regclass)
          ORDER BY polrelid",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0], policies[1]);
}

#[tokio::test]
async fn archived_partitions_stay_isolated() {
    let db = TestDb::migrated("rls_archive").await;
    let owner = db.owner_pool().await;
    // Rows of two tenants in the current month, which then gets archived 30 years on.
    let now = Utc::now();
    seed_two_tenants(&owner, now).await;
    let config = support::cli::write_config(
        "[[tables]]\nname = \"archon_ga4_events\"\nretention_mode = \"archive\"\nmax_expire_per_run = 10\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partwarden"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "maintain",
            "--execute",
            "--now",
            "2056-01-01T00:00:00Z",
        ])
        .env("DATABASE_URL", db.owner_url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let month = partwarden::calendar::partition_name(
        "archon_ga4_events",
        partwarden::calendar::Interval::Month,
        partwarden::calendar::Interval::Month.floor(now),
    );
    let archived = format!("partwarden_archive.{month}");
    owner
        .execute(
            "GRANT USAGE ON SCHEMA partwarden_archive TO app_user;
                 GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app_user;
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA partwarden_archive TO app_user;".to_string()
            .as_str(),
        )
        .await
        .unwrap();
    let app = db.app_pool().await;
    let select = format!("SELECT tenant_id::text FROM {archived}");
    assert_eq!(
        as_tenant(&app, Some(A), &select).await.unwrap(),
        vec![A.to_string()]
    );
    assert!(as_tenant(&app, None, &select).await.unwrap().is_empty());
    let err = as_tenant(&app, Some(A), &insert_event(B, now, &archived))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("row-level security"), "{err}");
}
