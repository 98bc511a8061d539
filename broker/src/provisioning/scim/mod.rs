//! The SCIM 2.0 service provider's state: SCIM clients and their tokens, the stored User and
//! Group documents, and provisioning — each SCIM change carried to the identity or group it
//! manages (a User with `active: false` is a leaver), audited in the same transaction.

pub mod clients;
pub mod provision;
pub mod store;

use crate::error::Error;
use gatehouse_scim::error::ScimError;

/// A broker error as a SCIM error. Storage failures say nothing of the cause to the client.
pub fn to_scim(e: Error) -> ScimError {
    match e {
        Error::NotFound(what) => ScimError::not_found(format!("{what} not found")),
        Error::Conflict(what) => ScimError::uniqueness(what),
        Error::Invalid(what) => ScimError::invalid_value(what),
        other => {
            tracing::error!(error = %other, "scim: storage failure");
            ScimError::new(500, None, "internal error")
        }
    }
}
