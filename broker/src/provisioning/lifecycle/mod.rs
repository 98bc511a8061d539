//! Identity lifecycle: HR records ([`record`]) become a joiner / mover / leaver plan
//! ([`plan`], a plain function) that the engine ([`engine`]) carries out, audited change by
//! change; start and end dates also take effect between imports ([`dates`]). Birthright rules
//! live on roles (`RoleSpec::birthright`).

pub mod bulk;
pub mod dates;
pub mod engine;
pub mod plan;
pub mod record;

pub use engine::{DEFAULT_GRACE_MS, apply, birthright_roles, current, terminate};
pub use plan::{Change, Kind, plan};
pub use record::{HrRecord, Parsed, RowError, parse};
