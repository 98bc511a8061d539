//! Ledger: what is kept and what leaves — the storage, the hash-chained audit log and the webhook
//! outbox, each written in the transaction of the change.

pub mod audit;
pub mod outbox;
pub mod store;
