//! Session recordings: the asciicast v2 stream a live SSH session writes ([`cast`]), the request
//! log of an app session ([`requests`]), the signed manifest written when either closes, and the
//! offline check of both ([`manifest`]). A leaf crate:
//! signing and checking signatures are handed in as functions, so it knows no key store.

pub mod cast;
pub mod index;
mod lines;
pub mod manifest;
pub mod requests;
mod utf8;

pub use cast::{CastWriter, Header, Summary};
pub use manifest::{Manifest, SessionInfo, Verified, VerifyError};
pub use requests::RequestWriter;

/// What can go wrong while recording.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("recording {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording: {0}")]
    Encode(String),
}

pub type Result<T> = std::result::Result<T, Error>;
