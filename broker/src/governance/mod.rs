//! Governance: after-the-fact oversight — the review items someone must look at and close, and
//! the findings of continuous least privilege.

pub mod findings;
pub mod reviews;
