//! The asciicast v2 stream of one session: a JSON header line, then `[time, code, data]` lines —
//! `o` output, `i` input, `r` resize (`"COLSxROWS"`), `m` markers for exec commands and file
//! operations. Written as the session runs through a bounded buffer that is flushed at least
//! once a second, so a crash loses about a second; the SHA-256 and size of every byte written are
//! kept for the manifest.

use crate::lines::LineFile;
use crate::utf8::Utf8Carry;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::lines::{BUFFER_BYTES, FLUSH_EVERY};

/// The first line of a cast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u8,
    pub width: u32,
    pub height: u32,
    /// Start, Unix seconds.
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub title: String,
}

impl Header {
    pub fn new(width: u32, height: u32, timestamp: i64, title: String) -> Self {
        Header {
            version: 2,
            width: width.max(1),
            height: height.max(1),
            timestamp,
            env: BTreeMap::new(),
            title,
        }
    }
}

/// What a finished cast is: where, how big, and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// Writes one cast as the session runs.
pub struct CastWriter {
    file: LineFile,
    started: Instant,
    out_carry: Utf8Carry,
    in_carry: Utf8Carry,
}

impl std::fmt::Debug for CastWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CastWriter({}, {} bytes)",
            self.file.path().display(),
            self.file.size()
        )
    }
}

impl CastWriter {
    /// Creates the file (never over an existing one; parent directories too) and writes the header.
    pub async fn create(path: &Path, header: &Header) -> Result<Self> {
        let line = serde_json::to_string(header).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(CastWriter {
            file: LineFile::create(path, &line).await?,
            started: Instant::now(),
            out_carry: Utf8Carry::default(),
            in_carry: Utf8Carry::default(),
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.file.size()
    }

    async fn line(&mut self, line: &str) -> Result<()> {
        self.file.line(line).await
    }

    async fn event(&mut self, code: &str, data: &str) -> Result<()> {
        let t = self.started.elapsed().as_secs_f64();
        let line = serde_json::to_string(&(Rounded(t), code, data))
            .map_err(|e| Error::Encode(e.to_string()))?;
        self.line(&line).await
    }

    /// Output towards the user.
    pub async fn output(&mut self, bytes: &[u8]) -> Result<()> {
        let text = self.out_carry.decode(bytes);
        if text.is_empty() {
            return Ok(());
        }
        self.event("o", &text).await
    }

    /// What the user typed.
    pub async fn input(&mut self, bytes: &[u8]) -> Result<()> {
        let text = self.in_carry.decode(bytes);
        if text.is_empty() {
            return Ok(());
        }
        self.event("i", &text).await
    }

    /// The terminal changed size.
    pub async fn resize(&mut self, width: u32, height: u32) -> Result<()> {
        self.event("r", &format!("{width}x{height}")).await
    }

    /// A marker: an exec command, a file operation, the end reason.
    pub async fn marker(&mut self, label: &str) -> Result<()> {
        self.event("m", label).await
    }

    /// Flushes when something waits and the last flush is a second old (call it on a timer too).
    pub async fn flush_if_due(&mut self) -> Result<()> {
        self.file.flush_if_due().await
    }

    /// Pushes everything buffered to the file.
    pub async fn flush(&mut self) -> Result<()> {
        self.file.flush().await
    }

    /// Ends the cast: the tails of split characters, a flush and an fsync; returns size and digest.
    pub async fn finish(mut self) -> Result<Summary> {
        let tail = self.out_carry.finish();
        if !tail.is_empty() {
            self.event("o", &tail).await?;
        }
        let tail = self.in_carry.finish();
        if !tail.is_empty() {
            self.event("i", &tail).await?;
        }
        self.file.finish().await
    }
}

/// Seconds with microsecond precision, written without float noise.
struct Rounded(f64);

impl Serialize for Rounded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_f64((self.0 * 1e6).round() / 1e6)
    }
}

/// One event read back from a cast.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub code: String,
    pub data: String,
}

/// Reads a cast: its header and events. Errors name the line.
pub fn parse(text: &str) -> std::result::Result<(Header, Vec<Event>), String> {
    let mut lines = text.lines().enumerate();
    let (_, first) = lines.next().ok_or("empty file")?;
    let header: Header =
        serde_json::from_str(first).map_err(|e| format!("line 1: not an asciicast header: {e}"))?;
    if header.version != 2 {
        return Err(format!(
            "line 1: asciicast version {} (expected 2)",
            header.version
        ));
    }
    let mut events = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (time, code, data): (f64, String, String) =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        events.push(Event { time, code, data });
    }
    Ok((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[tokio::test]
    async fn a_cast_is_a_header_and_timed_events_with_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/s1.cast");
        let mut h = Header::new(80, 24, 1_764_064_800, "alice → root@db-01".into());
        h.env.insert("TERM".into(), "xterm-256color".into());
        let mut w = CastWriter::create(&path, &h).await.unwrap();
        w.output("hé".as_bytes()).await.unwrap();
        w.output(&"llo €".as_bytes()[..5]).await.unwrap(); // the euro sign split in two chunks
        w.output(&"llo €".as_bytes()[5..]).await.unwrap();
        w.input(b"ls\r").await.unwrap();
        w.resize(120, 40).await.unwrap();
        w.marker("exec: uptime").await.unwrap();
        // A second file may never replace a recording.
        assert!(CastWriter::create(&path, &h).await.is_err());
        let s = w.finish().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(s.size, text.len() as u64);
        assert_eq!(s.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        let (header, events) = parse(&text).unwrap();
        assert_eq!(header, h);
        let codes: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.code.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("o", "hé"),
                ("o", "llo "),
                ("o", "€"),
                ("i", "ls\r"),
                ("r", "120x40"),
                ("m", "exec: uptime")
            ]
        );
        assert!(events.windows(2).all(|p| p[0].time <= p[1].time));
    }

    #[tokio::test]
    async fn buffered_output_reaches_the_file_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.cast");
        let mut w = CastWriter::create(&path, &Header::new(80, 24, 0, String::new()))
            .await
            .unwrap();
        w.output(b"first").await.unwrap();
        let on_disk = || std::fs::read_to_string(&path).unwrap();
        assert!(!on_disk().contains("first"), "still buffered");
        tokio::time::sleep(FLUSH_EVERY).await;
        w.flush_if_due().await.unwrap();
        assert!(on_disk().contains("first"));
    }
}
