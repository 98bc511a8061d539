//! A file of lines written as a session runs: through a bounded buffer written on the blocking
//! pool and flushed at least once a second (a crash loses about a second), with the SHA-256 and
//! size of every byte kept for the signed manifest. The asciicast and the app request log are
//! both one of these.

use crate::cast::Summary;
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Buffered bytes that make a write to the file before the next flush is due.
pub const BUFFER_BYTES: usize = 64 * 1024;
/// A buffer that grew past this is released at each timed flush: an idle session keeps none.
const KEEP_BYTES: usize = 4 * 1024;
/// The longest buffered data may wait before it reaches the file.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The file, its buffer and its digest so far.
pub(crate) struct LineFile {
    path: PathBuf,
    /// Always here except while a write runs on the blocking pool (then back with the buffer).
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
    dirty: bool,
    last_flush: Instant,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl LineFile {
    /// Creates the file (never over an existing one; parent directories too) with `first` as its
    /// first line, flushed.
    pub(crate) async fn create(path: &Path, first: &str) -> Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        }
        let mut open = tokio::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        open.mode(0o640);
        let file = open.open(path).await.map_err(io(path))?.into_std().await;
        let mut f = LineFile {
            path: path.to_path_buf(),
            file: Some(file),
            buf: Vec::new(),
            hasher: Sha256::new(),
            size: 0,
            dirty: false,
            last_flush: Instant::now(),
        };
        f.line(first).await?;
        f.flush().await?;
        Ok(f)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends `line` and a newline.
    pub(crate) async fn line(&mut self, line: &str) -> Result<()> {
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.size += line.len() as u64 + 1;
        self.dirty = true;
        if self.buf.len() >= BUFFER_BYTES {
            self.write_out(false).await?;
        }
        self.flush_if_due().await
    }

    /// Flushes when something waits and the last flush is a second old.
    pub(crate) async fn flush_if_due(&mut self) -> Result<()> {
        if self.dirty && self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush().await?;
        }
        Ok(())
    }

    fn lost(&self) -> Error {
        Error::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other("an earlier write did not finish"),
        }
    }

    /// Writes the buffer to the file on the blocking pool; `release`: free a grown buffer.
    async fn write_out(&mut self, release: bool) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut file = self.file.take().ok_or_else(|| self.lost())?;
        let data = std::mem::take(&mut self.buf);
        let (file, mut data, written) = tokio::task::spawn_blocking(move || {
            let written = file.write_all(&data);
            (file, data, written)
        })
        .await
        .map_err(|_| self.lost())?;
        self.file = Some(file);
        written.map_err(io(&self.path))?;
        data.clear();
        if !(release && data.capacity() > KEEP_BYTES) {
            self.buf = data;
        }
        Ok(())
    }

    /// Pushes everything buffered to the file.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.write_out(true).await?;
        self.dirty = false;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// A flush and an fsync; the size and digest of everything written.
    pub(crate) async fn finish(mut self) -> Result<Summary> {
        self.flush().await?;
        let path = self.path.clone();
        let file = self.file.take().ok_or_else(|| self.lost())?;
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(io(&path))?;
        Ok(Summary {
            path,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}
