//! The Gatehouse domain: identities, groups, targets, roles and assignments, grants, requests and
//! approvals, SoD, Cedar decisions, API tokens, the hash-chained audit log and the storage they
//! live in. No HTTP and no SSH here: the gateway and the web crates call
//! into this crate, never the other way round.

pub mod access;
pub mod actor;
pub mod bootstrap;
pub mod clock;
pub mod error;
pub mod events;
pub mod governance;
pub mod identity;
pub mod ids;
pub mod keys;
pub mod ledger;
pub mod provisioning;
pub mod sealing;
pub mod secrets;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use actor::Actor;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{Error, Result};
pub use ledger::store::{Backend, Store, StoreOptions, Tx};
