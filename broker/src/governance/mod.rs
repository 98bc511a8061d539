//! Governance: after-the-fact oversight — the review items someone must look at and close.

pub mod reviews;
