//! The gateway's errors. Whatever their detail, an SSH client only ever sees a denial that
//! reveals nothing; the detail goes to the log and the audit trail.

/// What can go wrong in the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key: {0}")]
    Key(String),
    #[error("{0}")]
    Broker(#[from] gatehouse_broker::Error),
    #[error("recording: {0}")]
    Recording(#[from] gatehouse_recordings::Error),
    #[error("ssh: {0}")]
    Ssh(String),
    #[error("upstream {target}: {message}")]
    Upstream { target: String, message: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<russh::Error> for Error {
    fn from(e: russh::Error) -> Self {
        Error::Ssh(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
