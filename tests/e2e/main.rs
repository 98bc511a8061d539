//! End-to-end tests of the real `gatehouse` binary: started as a user would start it, against
//! SQLite in a temporary data directory and against the real PostgreSQL server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod apps;
mod architecture;
mod audit;
mod harness;
mod push;
mod scim;
mod scim_security;
mod serve;
mod ssh;
mod tls;
mod ui;
mod usage;
