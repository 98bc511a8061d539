//! The replay page of an app session (protocol `http`): its request log read back
//! ([`gatehouse_recordings::requests::read`], bounded) as a table of requests, websocket opens
//! and closes and the end reason, filtered by GET parameters (`status=4xx`, `method`, `path`
//! substring) with counts, and the signature check as for SSH. Also the search index of a log:
//! every request and websocket as a timeline entry, so the sessions search finds paths.

use super::{Chrome, PageResult, render, when};
use askama::Template;
use gatehouse_broker::access::sessions::Session;
use gatehouse_recordings::index::{Command, Index};
use gatehouse_recordings::requests::{self, Line, Log};
use serde::Deserialize;
use std::path::Path;

/// Most rows one page shows (the counts still cover the whole log).
pub const MAX_ROWS: usize = 2000;

/// The page's filters, as typed in its form.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Filters {
    /// `4xx` (status 400 or more), `5xx` (500 or more) or empty.
    #[serde(default)]
    pub status: String,
    /// A method (any case) or empty.
    #[serde(default)]
    pub method: String,
    /// A piece of the path (any case) or empty.
    #[serde(default)]
    pub path: String,
}

impl Filters {
    fn min_status(&self) -> Option<u16> {
        match self.status.trim() {
            "4xx" => Some(400),
            "5xx" => Some(500),
            _ => None,
        }
    }

    fn any(&self) -> bool {
        self.min_status().is_some() || !self.method.trim().is_empty() || !self.path.is_empty()
    }

    /// Whether a line is shown: requests by all three filters; websocket lines (no status, no
    /// method) only without a status or method filter; the `end` line never (it is shown apart).
    fn keeps(&self, l: &Line) -> bool {
        let path_ok = self.path.is_empty()
            || l.path
                .as_deref()
                .is_some_and(|p| p.to_lowercase().contains(&self.path.to_lowercase()));
        let method = self.method.trim();
        match l.event.as_str() {
            "request" => {
                path_ok
                    && self
                        .min_status()
                        .is_none_or(|min| l.status.is_some_and(|s| s >= min))
                    && (method.is_empty()
                        || l.method
                            .as_deref()
                            .is_some_and(|m| m.eq_ignore_ascii_case(method)))
            }
            "ws_open" | "ws_close" => path_ok && self.min_status().is_none() && method.is_empty(),
            _ => false,
        }
    }
}

/// Reads a request log from disk, at most [`requests::MAX_BYTES`] of it.
pub async fn read_log(path: &Path) -> Option<Log> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await.ok()?;
    let mut bytes = Vec::new();
    file.take(requests::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .ok()?;
    tokio::task::spawn_blocking(move || {
        let text = String::from_utf8_lossy(&bytes);
        requests::read(&text, requests::MAX_LINES, requests::MAX_BYTES)
    })
    .await
    .ok()
}

/// The search index of a request log: each request (`METHOD PATH STATUS`) and websocket as an
/// entry; no output text.
pub fn index(log: &Log) -> Index {
    let commands = log
        .lines
        .iter()
        .filter_map(|l| {
            let path = l.path.as_deref().unwrap_or_default();
            let (kind, text) = match l.event.as_str() {
                "request" => (
                    "request",
                    format!(
                        "{} {path} {}",
                        l.method.as_deref().unwrap_or("?"),
                        l.status.unwrap_or_default()
                    ),
                ),
                "ws_open" => ("websocket", format!("open {path}")),
                _ => return None,
            };
            Some(Command {
                time: l.t,
                kind,
                text,
            })
        })
        .collect();
    Index {
        commands,
        output: String::new(),
    }
}

#[derive(Template)]
#[template(path = "app_replay.html")]
struct AppReplayPage {
    page: Chrome,
    s: Session,
    f: Filters,
    /// Methods seen in the log, for the filter's choices.
    methods: Vec<String>,
    rows: Vec<Line>,
    /// Requests shown (by the filters) and in the log.
    shown: usize,
    total: usize,
    /// More rows matched than [`MAX_ROWS`].
    capped: bool,
    has_log: bool,
    malformed: usize,
    truncated: bool,
    /// The `end` line's reason, when the log has one.
    end: Option<String>,
    /// `verified`, `NOT verified: why`, or `pending: …` (live).
    signature: String,
    signed_sha256: String,
}

impl AppReplayPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn verified(&self) -> bool {
        self.signature == "verified"
    }
    /// Time since the start as `m:ss.mmm`.
    fn at(&self, t: &f64) -> String {
        let ms = (t.max(0.0) * 1000.0).round() as u64;
        format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
    }
    fn num(&self, n: &Option<u64>) -> String {
        n.map(|n| n.to_string()).unwrap_or_default()
    }
    fn status_class(&self, l: &Line) -> &'static str {
        match l.status {
            Some(s) if s >= 400 => "error",
            _ => "",
        }
    }
}

/// The replay page of an app session whose request log is at `path` (when the path is safe).
pub async fn page(
    page: Chrome,
    s: Session,
    f: Filters,
    path: Option<&Path>,
    (signature, signed_sha256): (String, String),
) -> PageResult {
    let log = match path {
        Some(p) => read_log(p).await,
        None => None,
    };
    let has_log = log.is_some();
    let log = log.unwrap_or_default();
    let mut methods: Vec<String> = log.lines.iter().filter_map(|l| l.method.clone()).collect();
    let typed = f.method.trim().to_ascii_uppercase();
    if !typed.is_empty() {
        methods.push(typed);
    }
    methods.sort();
    methods.dedup();
    let total = log.lines.iter().filter(|l| l.event == "request").count();
    let kept: Vec<&Line> = log.lines.iter().filter(|l| f.keeps(l)).collect();
    let shown = kept.iter().filter(|l| l.event == "request").count();
    let capped = kept.len() > MAX_ROWS;
    let rows = kept.into_iter().take(MAX_ROWS).cloned().collect();
    let end = log
        .lines
        .iter()
        .rev()
        .find(|l| l.event == "end")
        .and_then(|l| l.reason.clone());
    let f = Filters {
        method: f.method.trim().to_ascii_uppercase(),
        ..f
    };
    render(&AppReplayPage {
        page,
        s,
        f,
        methods,
        rows,
        shown,
        total,
        capped,
        has_log,
        malformed: log.malformed,
        truncated: log.truncated,
        end,
        signature,
        signed_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &str, method: Option<&str>, path: &str, status: Option<u16>) -> Line {
        Line {
            t: 0.0,
            event: event.into(),
            method: method.map(str::to_owned),
            path: Some(path.into()),
            status,
            bytes_in: None,
            bytes_out: None,
            duration_ms: None,
            messages_in: None,
            messages_out: None,
            reason: None,
        }
    }

    #[test]
    fn filters_pick_requests_by_status_method_and_path() {
        let get = line("request", Some("GET"), "/d/Home?q=1", Some(200));
        let post = line("request", Some("POST"), "/api/save", Some(403));
        let ws = line("ws_open", None, "/api/live/ws", None);
        let end = line("end", None, "", None);
        let f = |status: &str, method: &str, path: &str| Filters {
            status: status.into(),
            method: method.into(),
            path: path.into(),
        };
        let keeps = |f: Filters| -> Vec<bool> {
            [&get, &post, &ws, &end]
                .iter()
                .map(|l| f.keeps(l))
                .collect()
        };
        assert_eq!(keeps(f("", "", "")), [true, true, true, false]);
        assert_eq!(keeps(f("4xx", "", "")), [false, true, false, false]);
        assert_eq!(keeps(f("5xx", "", "")), [false, false, false, false]);
        assert_eq!(keeps(f("", "get", "")), [true, false, false, false]);
        assert_eq!(keeps(f("", "", "home")), [true, false, false, false]);
        assert_eq!(keeps(f("", "", "/api")), [false, true, true, false]);
        assert_eq!(keeps(f("bogus", " ", "")), [true, true, true, false]);
    }
}
