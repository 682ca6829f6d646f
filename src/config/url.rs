//! The database URL, and the redaction that keeps its password out of every message.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A `postgres://` or `postgresql://` URL, parsed by the `url` crate (the parser sqlx
/// connects with) and held in a [`SecretString`]. `Debug` and `Display` redact the
/// password (`postgres://user:***@host/db`, also `?password=***`);
/// [`DatabaseUrl::expose`] gives the real string, for the connection only.
#[derive(Clone)]
pub struct DatabaseUrl {
    secret: SecretString,
    redacted: String,
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.secret.expose_secret() == other.secret.expose_secret()
    }
}

impl Eq for DatabaseUrl {}

impl DatabaseUrl {
    /// Check the scheme and the syntax, and wrap. The error never contains the password.
    pub fn new(url: impl Into<String>) -> Result<DatabaseUrl, String> {
        let secret = SecretString::from(url.into());
        let text = secret.expose_secret();
        let lower = text.to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            let shown = match text.find("://") {
                Some(i) => format!("{:?}", format!("{}://…", &text[..i])),
                None => "a value that is not a URL (not shown)".to_owned(),
            };
            return Err(format!(
                "must be a postgres:// or postgresql:// URL (got {shown})"
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "must not contain whitespace or control characters (got {})",
                redact_url(text)
            ));
        }
        let parsed = Url::parse(text).map_err(|e| {
            format!(
                "is not a valid URL: {e} (got {}; a password with '/', '@', ':' or '#' \
                 must be percent-encoded)",
                redact_url(text)
            )
        })?;
        let redacted = redact_parsed(&parsed);
        Ok(DatabaseUrl { secret, redacted })
    }

    /// The real URL, password included. Only for handing to the database driver.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        self.redacted.clone()
    }

    /// Does the URL carry a password (in the user info or as a `password` parameter)?
    pub fn has_password(&self) -> bool {
        self.redacted != self.expose()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DatabaseUrl::new(s)
    }
}

/// A parsed URL with the user-info password and every query parameter whose name contains
/// `password` (`password`, `sslpassword`) replaced by `***`; the rest as written.
fn redact_parsed(url: &Url) -> String {
    let mut shown = url.clone();
    if url.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        let _ = shown.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let params: Vec<String> = query
            .split('&')
            .map(|param| {
                let key = url::form_urlencoded::parse(param.as_bytes())
                    .next()
                    .map(|(k, _)| k.to_ascii_lowercase())
                    .unwrap_or_default();
                match param.split_once('=') {
                    Some((k, _)) if key.contains("password") => format!("{k}=***"),
                    _ => param.to_owned(),
                }
            })
            .collect();
        shown.set_query(Some(&params.join("&")));
    }
    shown.to_string()
}

/// Redact one URL-looking token: redacted as a URL when it parses as one, otherwise
/// everything after the scheme is hidden (an odd URL may hold its password anywhere).
fn redact_url(token: &str) -> String {
    match Url::parse(token) {
        Ok(url) => redact_parsed(&url),
        Err(_) => match token.find("://") {
            Some(i) => format!("{}://***", &token[..i]),
            None => token.to_owned(),
        },
    }
}

/// Redact every URL-looking token (anything around a `://`) in free text, such as a
/// parser's error message that quotes a line of the file.
pub(super) fn redact_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let is_delim = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(is_delim)
            .map(|p| p + rest[p..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        let end = rest[i..]
            .find(is_delim)
            .map(|p| i + p)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{env, load};
    use crate::config::Config;

    #[test]
    fn bad_urls_rejected_without_leaking() {
        let err = Config::from_sources(None, &env(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]))
            .unwrap_err();
        assert_eq!(err.key(), Some("DATABASE_URL"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load("[database]\nurl = \"host=h password=hunter2\"\n").unwrap_err();
        assert_eq!(err.key(), Some("database.url"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = load("[database]\nurl = \"postgres://u:hunter2@h/db x\"\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // A URL put into the wrong key is not echoed either.
        let err = Config::from_sources(
            None,
            &env(&[(
                "PARTWARDEN__DATABASE__MAX_CONNECTIONS",
                "postgres://u:hunter2@h/db",
            )]),
        )
        .unwrap_err();
        assert_eq!(err.key(), Some("database.max_connections"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn password_redacted() {
        let c = Config::from_sources(
            Some("[database]\nurl = \"postgres://app:hunter2@db.internal:5432/app?sslmode=require\"\n"),
            &[],
        )
        .unwrap();
        let url = c.database_url().unwrap();
        assert_eq!(
            url.expose(),
            "postgres://app:hunter2@db.internal:5432/app?sslmode=require"
        );
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.internal:5432/app?sslmode=require"
        );
        assert!(url.has_password());
        for shown in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.database),
            format!("{url}"),
            format!("{url:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(format!("{c:?}").contains("postgres://app:***@db.internal:5432/app"));
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.contains("contains a password")));
        let cases = [
            ("postgres://u:p@h/db", "postgres://u:***@h/db"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            ("postgres://h:5432/db", "postgres://h:5432/db"),
            ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=p&sslmode=require",
                "postgres://u@h/db?password=***&sslmode=require",
            ),
            (
                "postgres://u@h/db?sslpassword=p",
                "postgres://u@h/db?sslpassword=***",
            ),
        ];
        for (raw, red) in cases {
            let u = DatabaseUrl::new(raw).unwrap();
            assert_eq!(u.redacted(), red, "{raw}");
            assert_eq!(u.has_password(), raw != red, "{raw}");
        }
        assert_eq!(
            redact_urls("bad line: url = \"postgres://u:p@h/db\" here"),
            "bad line: url = \"postgres://u:***@h/db\" here"
        );
        // Not a URL sqlx could connect with either ("pa" would be the port): refused when
        // the configuration is loaded, the password not shown; in free text, hidden whole.
        let err = DatabaseUrl::new("postgres://u:pa/ss@h/db").unwrap_err();
        assert!(
            err.contains("not a valid URL") && err.contains("percent-encoded"),
            "{err}"
        );
        assert!(!err.contains("pa/ss") && !err.contains("ss@h"), "{err}");
        assert_eq!(
            redact_urls("x 'postgres://u:pa/ss@h/db' y"),
            "x 'postgres://***' y"
        );
        let err =
            Config::from_sources(Some("[database]\nurl = \"postgres://u:pa/ss@h/db\"\n"), &[])
                .unwrap_err();
        assert_eq!(err.key(), Some("database.url"));
        assert!(!err.to_string().contains("pa/ss"), "{err}");
    }
}
