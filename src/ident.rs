//! Validated, quotable PostgreSQL identifiers.
//!
//! Names that come from configuration (tables, schemas, columns, operator classes) become
//! [`Ident`]s, which only admit `^[a-z_][a-z0-9_$]*$` and at most 63 bytes: the subset that
//! means the same quoted and unquoted, so `events` in the config file is the table psql
//! shows as `events`. They are still always quoted when spliced into SQL ([`Ident::quoted`]),
//! and names read back from the catalog go through [`quote_ident`]. Values are never
//! spliced: they are bound parameters.
//!
//! Hand-written: these are PostgreSQL's own rules (quoting, NAMEDATALEN), which no
//! crate in use exposes; sqlx quotes nothing.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// PostgreSQL's `NAMEDATALEN - 1`: longer identifiers are silently truncated by the server,
/// which would make two configured names collide, so they are rejected instead.
pub const MAX_IDENT_LEN: usize = 63;

/// Why a string is not an acceptable identifier. The messages name the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    #[error("\"\" is not a valid identifier: it is empty")]
    Empty,
    #[error(
        "{value:?} is not a valid identifier: only lowercase letters, digits, _ and $ are \
         allowed, starting with a letter or _"
    )]
    InvalidCharacters { value: String },
    #[error("{value:?} is {len} bytes long; PostgreSQL identifiers are at most {MAX_IDENT_LEN}")]
    TooLong { value: String, len: usize },
}

/// A validated PostgreSQL identifier (`^[a-z_][a-z0-9_$]*$`, 1..=63 bytes).
///
/// `Display` and [`Ident::as_str`] give the bare name (for logs, metric labels and bound
/// parameters such as `relname = $1`); [`Ident::quoted`] gives the form to splice into SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ident(String);

impl Ident {
    /// Validate `s` as an identifier.
    pub fn new(s: impl Into<String>) -> Result<Ident, IdentError> {
        let s = s.into();
        validate(&s)?;
        Ok(Ident(s))
    }

    /// The bare (unquoted) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a SQL identifier: `"name"`, with any inner `"` doubled (validation
    /// already forbids them; quoting stays correct regardless).
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }

    /// `self` followed by `suffix`, validated again (for example a partition name, which
    /// must still fit in 63 bytes).
    pub fn with_suffix(&self, suffix: &str) -> Result<Ident, IdentError> {
        Ident::new(format!("{}{suffix}", self.0))
    }

    /// The inner string.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn validate(s: &str) -> Result<(), IdentError> {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return Err(IdentError::Empty);
    };
    let first_ok = first.is_ascii_lowercase() || first == '_';
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if !(first_ok && rest_ok) {
        return Err(IdentError::InvalidCharacters {
            value: s.to_owned(),
        });
    }
    if s.len() > MAX_IDENT_LEN {
        return Err(IdentError::TooLong {
            value: s.to_owned(),
            len: s.len(),
        });
    }
    Ok(())
}

/// Quote any name as a SQL identifier: `"name"`, inner `"` doubled. For names that come
/// from the catalog (partitions, indexes, policies), which need no validation but must
/// still be quoted.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A schema-qualified SQL name: `"schema"."name"`.
pub fn qualified(schema: &Ident, name: &str) -> String {
    format!("{}.{}", schema.quoted(), quote_ident(name))
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Ident {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ident::new(s)
    }
}

impl TryFrom<String> for Ident {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ident::new(s)
    }
}

impl TryFrom<&str> for Ident {
    type Error = IdentError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Ident::new(s)
    }
}

impl From<Ident> for String {
    fn from(i: Ident) -> String {
        i.0
    }
}

impl AsRef<str> for Ident {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Ident {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Ident {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Ident {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["events", "_x", "archon_ga4_events", "a$1", "t_2026_05", "x"] {
            let i = Ident::new(ok).unwrap_or_else(|e| panic!("{ok:?} rejected: {e}"));
            assert_eq!(i.as_str(), ok);
            assert_eq!(i.to_string(), ok);
            assert_eq!(i, ok);
        }
        let max = "a".repeat(63);
        assert_eq!(Ident::new(max.clone()).unwrap().as_str(), max);
    }

    #[test]
    fn rejects_bad_characters_naming_the_value() {
        for bad in [
            "events; drop table x",
            "Events",
            "1events",
            "$x",
            "ev-ents",
            "ev ents",
            "ev\"ents",
            "schema.table",
            "événements",
            "ev\u{0}",
        ] {
            let err = Ident::new(bad).expect_err(bad);
            assert!(
                matches!(err, IdentError::InvalidCharacters { .. }),
                "{bad:?}: {err:?}"
            );
        }
        let msg = Ident::new("events; drop table x").unwrap_err().to_string();
        assert_eq!(
            msg,
            "\"events; drop table x\" is not a valid identifier: only lowercase letters, digits, \
             _ and $ are allowed, starting with a letter or _"
        );
    }

    #[test]
    fn rejects_empty_and_long() {
        assert_eq!(Ident::new("").unwrap_err(), IdentError::Empty);
        let long = "a".repeat(70);
        let err = Ident::new(long.clone()).unwrap_err();
        assert_eq!(
            err,
            IdentError::TooLong {
                value: long.clone(),
                len: 70
            }
        );
        assert_eq!(
            err.to_string(),
            format!("{long:?} is 70 bytes long; PostgreSQL identifiers are at most 63")
        );
        assert!(Ident::new("a".repeat(64)).is_err());
    }

    #[test]
    fn quoting() {
        let i = Ident::new("events").unwrap();
        assert_eq!(i.quoted(), "\"events\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(quote_ident(""), "\"\"");
        let public = Ident::new("public").unwrap();
        assert_eq!(
            qualified(&public, "events_2026_05"),
            "\"public\".\"events_2026_05\""
        );
        assert_eq!(qualified(&public, "a\"b"), "\"public\".\"a\"\"b\"");
    }

    #[test]
    fn suffix_is_revalidated() {
        let i = Ident::new("events").unwrap();
        assert_eq!(
            i.with_suffix("_2026_05").unwrap().as_str(),
            "events_2026_05"
        );
        let long = Ident::new("a".repeat(60)).unwrap();
        assert!(matches!(
            long.with_suffix("_2026_05"),
            Err(IdentError::TooLong { len: 68, .. })
        ));
    }

    #[test]
    fn parse_and_serde() {
        let i: Ident = "events".parse().unwrap();
        assert_eq!(serde_json::to_string(&i).unwrap(), "\"events\"");
        let back: Ident = serde_json::from_str("\"events\"").unwrap();
        assert_eq!(back, i);
        assert!(serde_json::from_str::<Ident>("\"Bad Name\"").is_err());
        assert!(Ident::try_from("x;y").is_err());
        assert_eq!(String::from(i), "events");
    }
}
