//! Who did something, as written in the audit log.

use std::fmt;

/// The author of a change or the subject of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Gatehouse itself (timers, start-up, lifecycle engine).
    System,
    /// An operator at the command line on the server (`gatehouse ...`).
    Cli,
    /// A signed-in identity, by username.
    Identity(String),
    /// A SCIM client (an identity provider or HR system provisioning through /scim/v2), by name.
    Scim(String),
}

impl Actor {
    /// The actor for an identity.
    pub fn identity(username: impl Into<String>) -> Self {
        Actor::Identity(username.into())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Cli => f.write_str("cli"),
            Actor::Identity(u) => write!(f, "identity:{u}"),
            Actor::Scim(c) => write!(f, "scim:{c}"),
        }
    }
}
