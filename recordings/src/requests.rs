//! The request log of one app session (the app gateway's recording): JSON lines, a header line
//! first, then one line per request — seconds since the start, method, path and query with
//! secret-looking parameter values masked ([`mask`]), status, bytes in and out, duration — and
//! websocket closes and the end reason. Written like a cast ([`crate::cast`]): a bounded buffer
//! flushed at least once a second, the SHA-256 and size of every byte kept, closed with the same
//! signed manifest (`ID.requests.jsonl` beside `ID.manifest.json` and `ID.manifest.sig`).

use crate::cast::Summary;
use crate::lines::LineFile;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The format named in the header line.
pub const FORMAT: &str = "gatehouse-requests/1";
/// The file name ending of a request log.
pub const EXTENSION: &str = ".requests.jsonl";
/// The longest path (with query) kept per line; longer ones are cut and marked `…`.
pub const MAX_PATH: usize = 2048;

/// Parameter names whose values are never written: any name containing one of these.
const SECRET_NAMES: &[&str] = &[
    "token", "secret", "password", "passwd", "key", "code", "auth", "session", "sig",
];

/// The first line of a request log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    /// The session id (the `sessions` row).
    pub session: String,
    pub identity: String,
    pub app: String,
    /// Start, Unix seconds.
    pub timestamp: i64,
}

/// One request as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    /// Path and query, secret-looking values masked.
    pub path: String,
    pub status: u16,
    /// Request body bytes (client to app).
    pub bytes_in: u64,
    /// Response body bytes (app to client).
    pub bytes_out: u64,
    pub duration_ms: u64,
}

/// One line after the header, read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Seconds since the start.
    pub t: f64,
    /// `request`, `ws_open`, `ws_close` or `end`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Websocket messages each way (`ws_close`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A websocket that closed, for [`RequestWriter::ws_close`]: bytes and messages each way (in:
/// client to app), how long it was open, and why when the gateway closed it.
#[derive(Debug, Clone, Copy)]
pub struct WsClose<'a> {
    pub path: &'a str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub duration_ms: u64,
    pub reason: Option<&'a str>,
}

impl Line {
    fn new(t: f64, event: &str) -> Self {
        Line {
            t: (t * 1e6).round() / 1e6,
            event: event.into(),
            method: None,
            path: None,
            status: None,
            bytes_in: None,
            bytes_out: None,
            duration_ms: None,
            messages_in: None,
            messages_out: None,
            reason: None,
        }
    }
}

fn secret_name(name: &str) -> bool {
    let decoded: String = name
        .replace('+', " ")
        .split('%')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                return part.to_string();
            }
            match part.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => format!("{}{}", char::from(b), &part[2..]),
                None => format!("%{part}"),
            }
        })
        .collect();
    let lower = decoded.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| lower.contains(s))
}

/// A path with its query, each value of a secret-looking parameter (a name containing token,
/// secret, password, passwd, key, code, auth, session or sig, any case) replaced by `***`,
/// and cut at [`MAX_PATH`] bytes.
pub fn mask(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out = path.to_string();
    if let Some(q) = query {
        out.push('?');
        let masked: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if secret_name(name) => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&masked.join("&"));
    }
    if out.len() > MAX_PATH {
        let mut cut = MAX_PATH;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Writes one request log as the app session runs.
pub struct RequestWriter {
    file: LineFile,
    started: Instant,
}

impl std::fmt::Debug for RequestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RequestWriter({}, {} bytes)",
            self.file.path().display(),
            self.file.size()
        )
    }
}

impl RequestWriter {
    /// Creates the file (never over an existing one; parent directories too) and writes the
    /// header line.
    pub async fn create(path: &Path, header: &Header) -> Result<Self> {
        let line = serde_json::to_string(header).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(RequestWriter {
            file: LineFile::create(path, &line).await?,
            started: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.file.size()
    }

    async fn put(&mut self, line: &Line) -> Result<()> {
        let text = serde_json::to_string(line).map_err(|e| Error::Encode(e.to_string()))?;
        self.file.line(&text).await
    }

    fn t(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// A request that started at `at` (its path is masked here).
    pub async fn request(&mut self, at: Instant, r: &Request) -> Result<()> {
        let mut l = Line::new(self.t(at), "request");
        l.method = Some(r.method.clone());
        l.path = Some(mask(&r.path));
        l.status = Some(r.status);
        l.bytes_in = Some(r.bytes_in);
        l.bytes_out = Some(r.bytes_out);
        l.duration_ms = Some(r.duration_ms);
        self.put(&l).await
    }

    /// A websocket accepted by the app at `at`, on `path` (masked here).
    pub async fn ws_open(&mut self, at: Instant, path: &str) -> Result<()> {
        let mut l = Line::new(self.t(at), "ws_open");
        l.path = Some(mask(path));
        self.put(&l).await
    }

    /// A websocket closed now (see [`WsClose`]); its path is masked here.
    pub async fn ws_close(&mut self, c: &WsClose<'_>) -> Result<()> {
        let mut l = Line::new(self.t(Instant::now()), "ws_close");
        l.path = Some(mask(c.path));
        l.bytes_in = Some(c.bytes_in);
        l.bytes_out = Some(c.bytes_out);
        l.messages_in = Some(c.messages_in);
        l.messages_out = Some(c.messages_out);
        l.duration_ms = Some(c.duration_ms);
        l.reason = c.reason.map(str::to_owned);
        self.put(&l).await
    }

    /// Flushes when something waits and the last flush is a second old (call it on a timer).
    pub async fn flush_if_due(&mut self) -> Result<()> {
        self.file.flush_if_due().await
    }

    /// Pushes everything buffered to the file.
    pub async fn flush(&mut self) -> Result<()> {
        self.file.flush().await
    }

    /// Ends the log with an `end` line (the reason), a flush and an fsync; returns size and
    /// digest for the manifest ([`crate::manifest::write`]).
    pub async fn finish(mut self, reason: &str) -> Result<Summary> {
        let mut l = Line::new(self.t(Instant::now()), "end");
        l.reason = Some(reason.into());
        self.put(&l).await?;
        self.file.finish().await
    }
}

/// Reads a request log: its header and lines. Errors name the line.
pub fn parse(text: &str) -> std::result::Result<(Header, Vec<Line>), String> {
    let mut lines = text.lines().enumerate();
    let (_, first) = lines.next().ok_or("empty file")?;
    let header: Header = serde_json::from_str(first)
        .map_err(|e| format!("line 1: not a request log header: {e}"))?;
    if header.format != FORMAT {
        return Err(format!(
            "line 1: format {} (expected {FORMAT})",
            header.format
        ));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?);
    }
    Ok((header, out))
}

/// Most lines [`read`] takes from one log (the header not counted).
pub const MAX_LINES: usize = 100_000;
/// Most bytes [`read`] looks at in one log.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

/// A request log read back for display: the header when it parses, the lines that parse, how
/// many did not, and whether the log was cut at [`MAX_LINES`] or [`MAX_BYTES`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    pub header: Option<Header>,
    pub lines: Vec<Line>,
    /// Lines that were not JSON of the expected shape (skipped).
    pub malformed: usize,
    /// More lines (or bytes) were in the file than were read.
    pub truncated: bool,
}

/// Reads a request log leniently and boundedly: at most `max_lines` lines after the header and
/// `max_bytes` bytes (a partial last line is left out); a line that does not parse is skipped and
/// counted, never an error. For a strict check use [`parse`].
pub fn read(text: &str, max_lines: usize, max_bytes: usize) -> Log {
    let mut log = Log::default();
    let mut text = text;
    if text.len() > max_bytes {
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        // Only whole lines: up to the last newline inside the limit.
        text = &text[..text[..cut].rfind('\n').map_or(0, |n| n + 1)];
        log.truncated = true;
    }
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    if let Some(first) = lines.next() {
        match serde_json::from_str::<Header>(first) {
            Ok(h) if h.format == FORMAT => log.header = Some(h),
            _ => log.malformed += 1,
        }
    }
    for line in lines {
        if log.lines.len() >= max_lines {
            log.truncated = true;
            break;
        }
        match serde_json::from_str::<Line>(line) {
            Ok(l) if l.t.is_finite() => log.lines.push(l),
            _ => log.malformed += 1,
        }
    }
    log
}

/// Where a session's request log lives under the recordings directory: `YYYY/MM/DD/ID.requests.jsonl`.
pub fn relative_path(started_ms: i64, session_id: &str) -> PathBuf {
    let day = chrono::DateTime::from_timestamp_millis(started_ms)
        .map(|t| t.format("%Y/%m/%d").to_string())
        .unwrap_or_else(|| "1970/01/01".into());
    PathBuf::from(day).join(format!("{session_id}{EXTENSION}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn secret_looking_values_are_masked_and_the_rest_kept() {
        assert_eq!(mask("/a?token=abc&q=1"), "/a?token=***&q=1");
        assert_eq!(
            mask("/cb?Code=x&state=s&api_KEY=k&x%5Fsig=z&flag&page=2"),
            "/cb?Code=***&state=s&api_KEY=***&x%5Fsig=***&flag&page=2"
        );
        assert_eq!(
            mask("/?password=p&passwd=q&authorization=r&session_id=s&client_secret=t"),
            "/?password=***&passwd=***&authorization=***&session_id=***&client_secret=***"
        );
        assert_eq!(mask("/plain/path"), "/plain/path");
        assert_eq!(mask("/x?"), "/x?");
        let long = format!("/{}", "é".repeat(MAX_PATH));
        assert!(mask(&long).len() <= MAX_PATH + '…'.len_utf8());
    }

    #[tokio::test]
    async fn a_request_log_is_a_header_and_lines_with_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(relative_path(0, "s1"));
        assert!(path.ends_with("1970/01/01/s1.requests.jsonl"));
        let h = Header {
            format: FORMAT.into(),
            session: "s1".into(),
            identity: "alice".into(),
            app: "grafana".into(),
            timestamp: 0,
        };
        let mut w = RequestWriter::create(&path, &h).await.unwrap();
        let at = Instant::now();
        w.request(
            at,
            &Request {
                method: "GET".into(),
                path: "/d?token=abc&q=1".into(),
                status: 200,
                bytes_in: 0,
                bytes_out: 512,
                duration_ms: 3,
            },
        )
        .await
        .unwrap();
        w.ws_open(at, "/ws").await.unwrap();
        w.ws_close(&WsClose {
            path: "/ws",
            bytes_in: 10,
            bytes_out: 20,
            messages_in: 1,
            messages_out: 2,
            duration_ms: 5,
            reason: Some("revoked"),
        })
        .await
        .unwrap();
        assert!(RequestWriter::create(&path, &h).await.is_err());
        let s = w.finish("logout").await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(s.size, text.len() as u64);
        assert_eq!(s.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        assert!(!text.contains("abc"));
        let (header, lines) = parse(&text).unwrap();
        assert_eq!(header, h);
        let events: Vec<&str> = lines.iter().map(|l| l.event.as_str()).collect();
        assert_eq!(events, ["request", "ws_open", "ws_close", "end"]);
        assert_eq!(lines[0].path.as_deref(), Some("/d?token=***&q=1"));
        assert_eq!(lines[0].bytes_out, Some(512));
        assert_eq!(lines[3].reason.as_deref(), Some("logout"));
    }

    #[test]
    fn reading_skips_and_counts_malformed_lines_and_stops_at_its_bounds() {
        let text = concat!(
            r#"{"format":"gatehouse-requests/1","session":"s1","identity":"alice","app":"grafana","timestamp":0}"#,
            "\n",
            r#"{"t":0.5,"event":"request","method":"GET","path":"/a","status":200,"bytes_in":0,"bytes_out":9,"duration_ms":2}"#,
            "\nnot json at all\n",
            r#"{"t":"soon","event":"request"}"#,
            "\n\n",
            r#"{"t":1.0,"event":"ws_open","path":"/ws"}"#,
            "\n",
            r#"{"t":2.0,"event":"end","reason":"logout"}"#,
            "\n",
        );
        let log = read(text, MAX_LINES, MAX_BYTES);
        assert_eq!(log.header.as_ref().map(|h| h.app.as_str()), Some("grafana"));
        assert_eq!(log.malformed, 2);
        assert!(!log.truncated);
        let events: Vec<&str> = log.lines.iter().map(|l| l.event.as_str()).collect();
        assert_eq!(events, ["request", "ws_open", "end"]);
        assert_eq!(log.lines[0].status, Some(200));

        let cut = read(text, 1, MAX_BYTES);
        assert_eq!(cut.lines.len(), 1);
        assert!(cut.truncated);
        // A byte bound inside the third line keeps only whole lines before it.
        let at = text.find("not json").unwrap() + 3;
        let cut = read(text, MAX_LINES, at);
        assert_eq!(cut.lines.len(), 1);
        assert_eq!(cut.malformed, 0);
        assert!(cut.truncated);

        // No header, garbage, empty, a multi-byte character at the byte bound: never a panic.
        let bad = read("é{\n\u{0}\n", MAX_LINES, 1);
        assert_eq!(
            bad,
            Log {
                truncated: true,
                ..Log::default()
            }
        );
        let bad = read("{}\n[]\n", MAX_LINES, MAX_BYTES);
        assert_eq!((bad.header, bad.malformed, bad.lines.len()), (None, 2, 0));
        assert_eq!(read("", 10, 10), Log::default());
    }
}
