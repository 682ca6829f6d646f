//! Gives a relation the parent's row-level security: enabled, forced, exactly its
//! policies. The relation's state is read under the lock the changes need, and compared
//! with the same rules the planner used (`crate::plan::rls`).

use sqlx::{Connection, PgConnection};

use super::{exec, Step, StepError};
use crate::apply::locks::{self, LockMode, LockRequest};
use crate::catalog::RlsState;
use crate::catalog::{read_rls, Policy};
use crate::ident::quote_ident;
use crate::plan::rls::{changes, RlsChange};

/// In its own transaction, under ACCESS EXCLUSIVE on `rel` taken politely (ALTER TABLE …
/// ROW LEVEL SECURITY and CREATE/DROP POLICY need it).
pub(super) async fn sync_locked(
    conn: &mut PgConnection,
    step: &Step<'_>,
    rel: &str,
) -> Result<String, StepError> {
    let mut tx = conn.begin().await?;
    locks::take(
        &mut tx,
        &[LockRequest::table(rel, LockMode::AccessExclusive)],
        step.lock_wait,
    )
    .await?;
    let n = sync(&mut tx, step, rel).await?;
    tx.commit().await?;
    Ok(format!("{n} change(s)"))
}

/// Inside the caller's transaction (which holds, or may take, ACCESS EXCLUSIVE on `rel`).
/// Returns the number of changes.
pub(super) async fn sync(
    conn: &mut PgConnection,
    step: &Step<'_>,
    rel: &str,
) -> Result<usize, StepError> {
    let current: RlsState = read_rls(conn, rel)
        .await?
        .ok_or_else(|| StepError::Fatal(format!("{rel} does not exist")))?;
    let todo = changes(&step.snap.rls(), &current);
    for change in &todo {
        let sql = match change {
            RlsChange::Enable => format!("ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY"),
            RlsChange::Force => format!("ALTER TABLE {rel} FORCE ROW LEVEL SECURITY"),
            RlsChange::DropPolicy(p) => format!("DROP POLICY {} ON {rel}", quote_ident(&p.name)),
            RlsChange::CreatePolicy(p) => create_policy_sql(p, rel),
        };
        exec(conn, &sql).await?;
    }
    Ok(todo.len())
}

fn create_policy_sql(p: &Policy, rel: &str) -> String {
    let mut sql = format!(
        "CREATE POLICY {} ON {rel} AS {} FOR {} TO {}",
        quote_ident(&p.name),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.cmd,
        if p.roles.is_empty() {
            "PUBLIC".to_string()
        } else {
            p.roles.join(", ")
        }
    );
    if let Some(q) = &p.qual {
        sql.push_str(&format!(" USING ({q})"));
    }
    if let Some(w) = &p.with_check {
        sql.push_str(&format!(" WITH CHECK ({w})"));
    }
    sql
}
