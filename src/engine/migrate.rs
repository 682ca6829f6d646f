//! The SQL migrations of `migrations/`, embedded in the binary at build time.
//!
//! They are plain idempotent SQL, so `psql -v ON_ERROR_STOP=1 -f` in file order gives the
//! same schema as `partwarden migrate`; sqlx additionally records what it applied in
//! `_sqlx_migrations` and holds its own advisory lock while it runs.

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::PgPool;

use crate::diagnose::{extension_problem, server_message, ExtensionProblem};
use crate::error::Error;

/// Every migration in `migrations/`, in order.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Applies the migrations not yet applied. Returns the versions that were applied now.
pub async fn run(pool: &PgPool) -> Result<Vec<i64>, Error> {
    super::distribute::refuse_worker(pool).await?;
    let before: Vec<i64> = applied_versions(pool).await.unwrap_or_default();
    if let Err(e) = MIGRATOR.run(pool).await {
        return Err(explain(pool, e).await);
    }
    let after = applied_versions(pool).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// A migration the server refused, said as what to do: the extension a superuser must
/// create (or a package install first), or the tables the role must own. Anything else,
/// and whatever cannot be looked up, stays sqlx's error.
async fn explain(pool: &PgPool, err: MigrateError) -> Error {
    let MigrateError::ExecuteMigration(e, version) = &err else {
        return err.into();
    };
    let Ok(mut conn) = pool.acquire().await else {
        return err.into();
    };
    if let Some(problem) = extension_problem(e) {
        let who: Result<(String, String, i32), _> = sqlx::query_as(
            "SELECT quote_ident(current_user), current_database()::text,
                    current_setting('server_version_num')::int / 10000",
        )
        .fetch_one(&mut *conn)
        .await;
        let Ok((role, database, server_major)) = who else {
            return err.into();
        };
        let refused = server_message(e);
        return match problem {
            ExtensionProblem::NeedsSuperuser(extension) => Error::ExtensionNotCreated {
                version: *version,
                extension,
                role,
                database,
                refused,
            },
            ExtensionProblem::NotInstalled(extension) => Error::ExtensionNotInstalled {
                version: *version,
                extension,
                database,
                server_major,
                refused,
            },
        };
    }
    match crate::catalog::privilege::explain_refusal(&mut conn, e, None).await {
        Ok(Some(explained)) => explained,
        _ => err.into(),
    }
}
