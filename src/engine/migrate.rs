//! The SQL migrations of `migrations/`, embedded in the binary at build time.
//!
//! They are plain idempotent SQL, so `psql -v ON_ERROR_STOP=1 -f` in file order gives the
//! same schema as `partwarden migrate`; sqlx additionally records what it applied in
//! `_sqlx_migrations` and holds its own advisory lock while it runs.

use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::error::Error;

/// Every migration in `migrations/`, in order.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Applies the migrations not yet applied. Returns the versions that were applied now.
pub async fn run(pool: &PgPool) -> Result<Vec<i64>, Error> {
    let before: Vec<i64> = applied_versions(pool).await.unwrap_or_default();
    MIGRATOR.run(pool).await?;
    let after = applied_versions(pool).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}
