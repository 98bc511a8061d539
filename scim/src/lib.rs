//! SCIM 2.0 (RFC 7643 / RFC 7644) as plain functions over JSON documents: the published schemas,
//! filters and attribute paths, PATCH, attribute projection and input validation. No IO: the
//! broker stores the documents and the web crate speaks HTTP.

pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;
