//! What a database error means for the operator. The server says *what* it refused; the
//! operator needs *what to do*, and that depends on which object it was about. Pure
//! parsing of SQLSTATE and message here; the lookups that name owners are in
//! [`crate::catalog::privilege`], the messages in [`crate::error::Error`].

/// The tables `migrations/` creates (in the migrating role's current schema). A missing
/// one in a database no migration was recorded in means `partwarden migrate` has not run
/// there. Checked against the migrations' SQL by a test.
pub const MIGRATED_TABLES: &[&str] = &[
    "archon_ga4_events",
    "archon_ga4_events_default",
    "archon_ga4_daily_summaries",
    "partwarden_state",
    "partwarden_journal",
    "partwarden_exports",
];

/// The functions `migrations/` creates (checked the same way).
pub const MIGRATED_FUNCTIONS: &[&str] = &[
    "partwarden_sync_partition_rls",
    "partwarden_range_bounds",
    "partwarden_utc_month_start",
    "create_ga4_events_partition",
    "ensure_ga4_partitions_exist",
    "drop_old_ga4_partitions",
    "get_ga4_partition_stats",
];

fn code_and_message(e: &sqlx::Error) -> Option<(String, &str)> {
    let d = e.as_database_error()?;
    Some((d.code()?.to_string(), d.message()))
}

/// The object of partwarden's migrations an error says does not exist (42P01
/// undefined_table, 42883 undefined_function), as the server names it.
pub fn missing_migrated_object(e: &sqlx::Error) -> Option<String> {
    let (code, message) = code_and_message(e)?;
    let name = match code.as_str() {
        "42P01" => message
            .strip_prefix("relation \"")?
            .split_once("\" does not exist")?
            .0
            .to_string(),
        "42883" => message
            .strip_prefix("function ")?
            .split_once('(')?
            .0
            .to_string(),
        _ => return None,
    };
    let bare = name.rsplit('.').next().unwrap_or(&name);
    let known = MIGRATED_TABLES.contains(&bare) || MIGRATED_FUNCTIONS.contains(&bare);
    known.then_some(name)
}

/// Why a migration could not create an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionProblem {
    /// The server has it, but this role may not create it (not a trusted extension).
    NeedsSuperuser(String),
    /// The server does not have its files: a package must be installed first.
    NotInstalled(String),
}

/// `CREATE EXTENSION` refused: 42501 "permission denied to create extension", 0A000
/// "extension … is not available" (PostgreSQL 15+), 58P01 "could not open extension
/// control file …/NAME.control" (before 15).
pub fn extension_problem(e: &sqlx::Error) -> Option<ExtensionProblem> {
    let (code, message) = code_and_message(e)?;
    let quoted = || Some(message.split('"').nth(1)?.to_string());
    match code.as_str() {
        "42501" if message.starts_with("permission denied to create extension") => {
            quoted().map(ExtensionProblem::NeedsSuperuser)
        }
        "0A000" if message.ends_with("is not available") && message.starts_with("extension") => {
            quoted().map(ExtensionProblem::NotInstalled)
        }
        "58P01" if message.starts_with("could not open extension control file") => {
            let file = quoted()?;
            let stem = file.rsplit('/').next()?.strip_suffix(".control")?;
            Some(ExtensionProblem::NotInstalled(stem.to_string()))
        }
        _ => None,
    }
}

/// What an insufficient_privilege error (42501) was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A table, index, sequence… (unqualified, as the server prints it).
    Relation(String),
    Schema(String),
}

/// The object of a 42501 "must be owner of KIND NAME" / "permission denied for KIND NAME".
pub fn refused_object(e: &sqlx::Error) -> Option<Refused> {
    let (code, message) = code_and_message(e)?;
    if code != "42501" {
        return None;
    }
    let rest = message
        .strip_prefix("must be owner of ")
        .or_else(|| message.strip_prefix("permission denied for "))?;
    let (kind, name) = rest.split_once(' ')?;
    match kind {
        "schema" => Some(Refused::Schema(name.to_string())),
        "table" | "relation" | "index" | "sequence" | "view" | "materialized" => {
            let name = name.strip_prefix("view ").unwrap_or(name);
            Some(Refused::Relation(name.to_string()))
        }
        _ => None,
    }
}

/// The server's message with its SQLSTATE, as partwarden quotes a refusal.
pub fn server_message(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(d) => match d.code() {
            Some(code) => format!("{} (SQLSTATE {code})", d.message()),
            None => d.message().to_string(),
        },
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server error with this SQLSTATE and message.
    #[derive(Debug)]
    struct Server(&'static str, &'static str);

    impl std::fmt::Display for Server {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.1)
        }
    }

    impl std::error::Error for Server {}

    impl sqlx::error::DatabaseError for Server {
        fn message(&self) -> &str {
            self.1
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn server(code: &'static str, message: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Server(code, message)))
    }

    #[test]
    fn a_missing_object_of_the_migrations_is_recognized() {
        let missing = |code, message| missing_migrated_object(&server(code, message));
        assert_eq!(
            missing(
                "42P01",
                "relation \"public.archon_ga4_events\" does not exist"
            ),
            Some("public.archon_ga4_events".into())
        );
        assert_eq!(
            missing("42883", "function get_ga4_partition_stats() does not exist"),
            Some("get_ga4_partition_stats".into())
        );
        // Someone else's objects are not partwarden's to migrate.
        assert_eq!(missing("42P01", "relation \"orders\" does not exist"), None);
        assert_eq!(
            missing("42501", "relation \"partwarden_state\" does not exist"),
            None
        );
    }

    #[test]
    fn extension_refusals_are_told_apart() {
        let problem = |code, message| extension_problem(&server(code, message));
        assert_eq!(
            problem("42501", "permission denied to create extension \"vector\""),
            Some(ExtensionProblem::NeedsSuperuser("vector".into()))
        );
        assert_eq!(
            problem("0A000", "extension \"vector\" is not available"),
            Some(ExtensionProblem::NotInstalled("vector".into()))
        );
        assert_eq!(
            problem(
                "58P01",
                "could not open extension control file \"/usr/share/postgresql/14/extension/vector.control\": No such file or directory"
            ),
            Some(ExtensionProblem::NotInstalled("vector".into()))
        );
        assert_eq!(problem("42501", "must be owner of table t"), None);
    }

    #[test]
    fn the_refused_object_is_read_from_the_message() {
        let refused = |message| refused_object(&server("42501", message));
        assert_eq!(
            refused("must be owner of table archon_ga4_events_default"),
            Some(Refused::Relation("archon_ga4_events_default".into()))
        );
        assert_eq!(
            refused("permission denied for table archon_ga4_events"),
            Some(Refused::Relation("archon_ga4_events".into()))
        );
        assert_eq!(
            refused("permission denied for materialized view daily"),
            Some(Refused::Relation("daily".into()))
        );
        assert_eq!(
            refused("permission denied for schema partwarden_archive"),
            Some(Refused::Schema("partwarden_archive".into()))
        );
        assert_eq!(
            refused("permission denied to create extension \"vector\""),
            None
        );
    }

    /// Every table and function the embedded migrations create is known, and nothing else.
    #[test]
    fn the_lists_match_the_migrations() {
        let mut tables = Vec::new();
        let mut functions = Vec::new();
        for m in crate::engine::migrate::MIGRATOR.iter() {
            for (marker, into) in [
                ("CREATE TABLE IF NOT EXISTS ", &mut tables),
                ("CREATE OR REPLACE FUNCTION ", &mut functions),
            ] {
                for piece in m.sql.split(marker).skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !into.contains(&name) {
                        into.push(name);
                    }
                }
            }
        }
        let sorted = |v: &[&str]| {
            let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        tables.sort();
        functions.sort();
        assert_eq!(tables, sorted(MIGRATED_TABLES));
        assert_eq!(functions, sorted(MIGRATED_FUNCTIONS));
    }
}
