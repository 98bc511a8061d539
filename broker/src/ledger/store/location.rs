//! Database URLs: which backend they name, and how to talk about them without leaking secrets.

use super::Backend;
use crate::error::{Error, Result};
use std::path::Path;

/// Where a database is, as far as users need to be told.
#[derive(Debug, Clone)]
pub struct DatabaseLocation {
    backend: Backend,
    /// `host:port/db` for PostgreSQL, the file path for SQLite. Never contains a password.
    display: String,
}

impl DatabaseLocation {
    /// Reads the backend and a printable location from a URL.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            let decoded = percent_decode(path);
            return Ok(Self {
                backend: Backend::Sqlite,
                display: format!("SQLite database {decoded}"),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let parsed = url::Url::parse(url)
                .map_err(|e| Error::invalid(format!("database URL is not a valid URL: {e}")))?;
            let host = parsed.host_str().unwrap_or("localhost");
            let port = parsed.port().unwrap_or(5432);
            let db = parsed.path().trim_start_matches('/');
            let display = if db.is_empty() {
                format!("PostgreSQL at {host}:{port}")
            } else {
                format!("PostgreSQL at {host}:{port} (database {db})")
            };
            return Ok(Self {
                backend: Backend::Postgres,
                display,
            });
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(Error::invalid(format!(
            "unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://HOST/DB"
        )))
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A human description naming the host or file.
    pub fn describe(&self) -> String {
        self.display.clone()
    }
}

/// The sqlx URL of a SQLite file, created if missing.
pub fn sqlite_url(path: &Path) -> String {
    let mut encoded = String::new();
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_location_hides_password() {
        let l = DatabaseLocation::parse("postgres://gh:s3cret@db.internal:6543/gatehouse").unwrap();
        assert_eq!(l.backend(), Backend::Postgres);
        assert_eq!(
            l.describe(),
            "PostgreSQL at db.internal:6543 (database gatehouse)"
        );
        assert!(!l.describe().contains("s3cret"));
    }

    #[test]
    fn sqlite_url_round_trips_odd_paths() {
        let url = sqlite_url(Path::new("/tmp/my data/gh#1.db"));
        assert_eq!(url, "sqlite:///tmp/my%20data/gh%231.db?mode=rwc");
        let l = DatabaseLocation::parse(&url).unwrap();
        assert_eq!(l.describe(), "SQLite database /tmp/my data/gh#1.db");
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let e = DatabaseLocation::parse("mysql://x/y").unwrap_err();
        assert!(
            e.to_string()
                .contains("unsupported database URL scheme \"mysql\""),
            "{e}"
        );
    }
}
