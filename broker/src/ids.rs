//! Identifiers: sortable UUID v7, stored as text on every backend.

/// A new time-sortable identifier.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
