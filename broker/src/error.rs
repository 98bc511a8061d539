//! The broker's error type, with a stable machine-readable code per variant.

use std::fmt;

/// Result alias for broker operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the domain. The web crate maps these to HTTP in one place;
/// the gateway maps them to denials that reveal nothing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached (connection refused, pool timed out, server gone).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The change collides with existing state (duplicate name, already bootstrapped, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller gave something malformed.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// No valid credential was presented.
    #[error("not authenticated")]
    Unauthenticated,
    /// A valid identity lacks the right to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A rule of the access model refuses this, and the caller may know which: self-approval,
    /// an SoD conflict, a missing fresh MFA, not an approver, not eligible. `.0` is the stable code.
    #[error("{1}")]
    Refused(&'static str, String),
    /// A key file could not be read, created or parsed.
    #[error("key: {0}")]
    Key(String),
    /// The database answered with something unexpected.
    #[error("storage: {0}")]
    Storage(String),
}

impl Error {
    /// A stable code for clients and logs; never changes once published.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "unavailable",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Invalid(_) => "invalid",
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::Refused(code, _) => code,
            Error::Key(_) => "key",
            Error::Storage(_) => "storage",
        }
    }

    pub(crate) fn refused(code: &'static str, msg: impl fmt::Display) -> Self {
        Error::Refused(code, msg.to_string())
    }

    pub(crate) fn invalid(msg: impl fmt::Display) -> Self {
        Error::Invalid(msg.to_string())
    }

    /// A conflict reworded for the caller (`identity alice already exists`); other errors unchanged.
    pub(crate) fn on_conflict(self, msg: impl FnOnce() -> String) -> Self {
        match self {
            Error::Conflict(_) => Error::Conflict(msg()),
            other => other,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Error::Unavailable(e.to_string()),
            sqlx::Error::RowNotFound => Error::NotFound("row".into()),
            // The database's own message names tables and constraints: keep it out of answers.
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::Conflict("already exists".into())
            }
            sqlx::Error::Database(db) if is_connection_lost(db.code().as_deref()) => {
                Error::Unavailable(db.message().to_string())
            }
            _ => Error::Storage(e.to_string()),
        }
    }
}

/// PostgreSQL SQLSTATE classes that mean "the server went away or refuses us", not "your query is
/// wrong": 08 (connection exception), 28 (authentication), 57P (operator intervention: shutdown,
/// database dropped), 3D000 (database does not exist).
fn is_connection_lost(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            c.starts_with("08") || c.starts_with("28") || c.starts_with("57P") || c == "3D000"
        }
        None => false,
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => Error::from(inner),
            other => Error::Storage(format!("migration: {other}")),
        }
    }
}
