//! Provisioning: identities, groups and access brought in line from outside and pushed out — the
//! HR lifecycle, the SCIM service provider, push to apps and policy as code (`apply`).

pub mod apply;
pub mod lifecycle;
pub mod push;
pub mod scim;
