//! The Gatehouse domain: identities, groups, targets, roles and assignments, grants, requests and
//! approvals, SoD, Cedar decisions, API tokens, the hash-chained audit log and the storage they
//! live in. No HTTP and no SSH here: the gateway and the web crates call
//! into this crate, never the other way round.

pub mod actor;
pub mod apply;
pub mod apps;
pub mod assignments;
pub mod audit;
pub mod bootstrap;
pub mod clock;
pub mod credentials;
pub mod directory;
pub mod error;
pub mod events;
pub mod grants;
pub mod groups;
pub mod identities;
pub mod ids;
pub mod keys;
pub mod lifecycle;
pub mod mfa;
pub mod outbox;
pub mod passkeys;
pub mod passwords;
pub mod policy;
pub mod privileges;
pub mod push;
pub mod recovery;
pub mod requests;
pub mod reviews;
pub mod role_spec;
pub mod roles;
pub mod scim;
pub mod sealing;
pub mod secrets;
pub mod sessions;
pub mod sod;
pub mod ssh_keys;
pub mod store;
pub mod targets;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tokens;
pub mod web_sessions;

pub use actor::Actor;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Error, Result};
pub use store::{Backend, Store, StoreOptions, Tx};
