//! Who owns what, read when the server refused a statement for want of privilege
//! (SQLSTATE 42501): the refusal names one object, the operator needs the role partwarden
//! connects as, that object's owner, and everything else of the same table it does not
//! own, to fix them all at once.

use sqlx::PgConnection;

use crate::diagnose::{refused_object, server_message, Refused};
use crate::error::Error;

/// The relations of `relation`'s partition tree (from its root: the parent, every
/// partition, the default partition) the current role does not own (nor inherit the
/// privileges of their owner), parent first. A table outside any tree is its own.
const NOT_OWNED_SQL: &str = r#"
WITH target AS (
    SELECT coalesce(pg_partition_root(r), r) AS root
      FROM (SELECT coalesce(to_regclass(format('%I.%I', coalesce($2::text, current_schema()), $1::text)),
                            to_regclass(format('%I', $1::text))) AS r) x
     WHERE r IS NOT NULL
)
SELECT format('%I.%I', n.nspname, c.relname), quote_ident(pg_get_userbyid(c.relowner))
  FROM target
 CROSS JOIN LATERAL pg_partition_tree(target.root) t
  JOIN pg_class c ON c.oid = t.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT pg_has_role(current_user, c.relowner, 'USAGE')
 ORDER BY t.level, 1
"#;

/// The refusal `e` explained: which role partwarden is, and what it must own or be
/// granted, read now. `schema` is where the refused relation is looked for first (the
/// managed table's; default the current schema), then the search path. `None` when `e` is no refusal partwarden can explain.
pub async fn explain_refusal(
    conn: &mut PgConnection,
    e: &sqlx::Error,
    schema: Option<&str>,
) -> Result<Option<Error>, sqlx::Error> {
    let Some(refused) = refused_object(e) else {
        return Ok(None);
    };
    let role: String = sqlx::query_scalar("SELECT quote_ident(current_user)")
        .fetch_one(&mut *conn)
        .await?;
    let server = server_message(e);
    Ok(match refused {
        Refused::Relation(name) => {
            let not_owned: Vec<(String, String)> = sqlx::query_as(NOT_OWNED_SQL)
                .bind(&name)
                .bind(schema)
                .fetch_all(&mut *conn)
                .await?;
            Some(Error::NotOwner {
                refused: server,
                role,
                not_owned,
            })
        }
        Refused::Schema(schema) => {
            let found: Option<(String, String)> = sqlx::query_as(
                "SELECT quote_ident(nspname), quote_ident(pg_get_userbyid(nspowner))
                   FROM pg_namespace WHERE nspname = $1",
            )
            .bind(&schema)
            .fetch_optional(&mut *conn)
            .await?;
            found.map(|(schema, owner)| Error::SchemaPrivilege {
                refused: server,
                role,
                schema,
                owner,
            })
        }
    })
}
