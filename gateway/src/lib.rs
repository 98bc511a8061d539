//! The Gatehouse data plane: the SSH gateway (a russh server facing engineers' OpenSSH clients and
//! a russh client facing targets), session recording and enforcement (sessions end with their
//! grant). It asks the broker in-process for every decision; it never decides on its own.

pub mod error;
pub mod keys;
pub mod sandbox;
pub mod sandbox_app;

pub use error::{Error, Result};
pub mod enforce;
pub mod http;
pub mod pinned;
pub mod ssh;
