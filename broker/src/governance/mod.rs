//! Governance: after-the-fact oversight — the review items someone must look at and close,
//! access review campaigns (certification, mover reviews) and the findings of continuous least
//! privilege.

pub mod campaigns;
pub mod compliance;
pub mod findings;
pub mod reviews;
