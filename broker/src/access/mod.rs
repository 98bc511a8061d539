//! Access: what may be reached and by whom — targets, roles and their specs, assignments, grants,
//! requests and approvals, segregation of duties, control-plane privileges, app sessions, vaulted
//! credentials, the Cedar decisions and the gateway sessions they allow.

pub mod apps;
pub mod assignments;
pub mod credentials;
pub mod grants;
pub mod policy;
pub mod privileges;
pub mod requests;
pub mod role_spec;
pub mod roles;
pub mod sessions;
pub mod sod;
pub mod targets;
