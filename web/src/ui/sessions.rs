//! The security reviewer's pages: sessions with filters and full-text search over what was
//! typed and shown, the replay page (asciinema-player served from the binary, a command timeline
//! that seeks it, the recording's signature checked), downloads of cast and manifest, the live
//! view over a websocket, and terminating a live session. App sessions (protocol `http`) have a
//! request log instead of a cast: their replay page is [`super::app_replay`], their search
//! covers request paths, and the cast download serves the log. Every route here needs the
//! `reviewer` privilege (checked by the access layer).

use super::app_replay;
use super::{Chrome, PageError, PageResult, Signed, begin, conn, render, when};
use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gatehouse_broker::access::sessions::{self, Filter, Session};
use gatehouse_recordings::index::{self, Command, Index};
use gatehouse_recordings::requests;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/{id}", get(replay))
        .route("/sessions/{id}/cast", get(cast))
        .route("/sessions/{id}/manifest.json", get(manifest))
        .route("/sessions/{id}/manifest.sig", get(signature))
        .route("/sessions/{id}/live", get(live))
        .route("/sessions/{id}/terminate", post(terminate))
}

/// How many recent sessions a full-text search reads.
const SEARCH_WINDOW: i64 = 500;

#[derive(Deserialize, Default, Clone)]
struct ListQuery {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    target: String,
    /// `live`, `ended` or empty.
    #[serde(default)]
    state: String,
    /// YYYY-MM-DD (UTC), inclusive.
    #[serde(default)]
    from: String,
    /// YYYY-MM-DD (UTC), inclusive.
    #[serde(default)]
    to: String,
    /// Words to find in typed commands and output.
    #[serde(default)]
    q: String,
}

struct Row {
    s: Session,
    hit: Option<String>,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct ListPage {
    page: Chrome,
    f: ListQuery,
    rows: Vec<Row>,
    error: Option<String>,
}

impl ListPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn took(&self, s: &Session) -> String {
        match s.ended_at_ms {
            Some(e) => super::span(e - s.started_at_ms),
            None => "live".into(),
        }
    }
}

/// Whether a session is an app session (a request log, not a cast).
fn is_app(s: &Session) -> bool {
    s.protocol == "http"
}

/// The cast file (an app session's request log) of a session (ended: as recorded; live: where
/// it is being written), if the path stays inside the recordings directory.
fn cast_path(state: &AppState, s: &Session) -> Option<PathBuf> {
    let rel = match &s.recording {
        Some(r) => PathBuf::from(r),
        None if is_app(s) => requests::relative_path(s.started_at_ms, &s.id),
        None => index::relative_cast_path(s.started_at_ms, &s.id),
    };
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return None;
    }
    Some(state.web.recordings_dir.join(rel))
}

/// The index of a session's recording (cached for ended sessions).
async fn index_of(state: &AppState, s: &Session) -> Option<Arc<Index>> {
    if let Some(hit) = state
        .web
        .indexes
        .lock()
        .ok()
        .and_then(|c| c.get(&s.id).cloned())
    {
        return Some(hit);
    }
    let path = cast_path(state, s)?;
    let idx = if is_app(s) {
        let log = app_replay::read_log(&path).await?;
        Arc::new(app_replay::index(&log))
    } else {
        cast_index(&path).await?
    };
    if s.ended_at_ms.is_some()
        && let Ok(mut c) = state.web.indexes.lock()
    {
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(s.id.clone(), idx.clone());
    }
    Some(idx)
}

/// The index of a cast file.
async fn cast_index(path: &std::path::Path) -> Option<Arc<Index>> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    tokio::task::spawn_blocking(move || {
        gatehouse_recordings::cast::parse(&text)
            .ok()
            .map(|(_, events)| Arc::new(index::index(&events)))
    })
    .await
    .ok()
    .flatten()
}

/// Where `needle` (lower case) occurs in the index: a short excerpt. Each line is lowercased
/// on its own and matched whole: no byte offset found in a lowercased copy ever slices the
/// original (case mapping changes lengths: U+212A KELVIN SIGN is 3 bytes, its `k` one).
fn find(idx: &Index, needle: &str) -> Option<String> {
    if let Some(c) = idx
        .commands
        .iter()
        .find(|c| c.text.to_lowercase().contains(needle))
    {
        return Some(format!("{} at {:.1}s: {}", c.kind, c.time, c.text));
    }
    let line = output_line(&idx.output, needle)?;
    let line: String = line.chars().take(160).collect();
    Some(format!("output: {line}"))
}

/// The first line of `output` whose lowercase form contains `needle` (already lower case).
fn output_line<'a>(output: &'a str, needle: &str) -> Option<&'a str> {
    output
        .split('\n')
        .find(|line| line.to_lowercase().contains(needle))
}

async fn list(State(state): State<AppState>, s: Signed, Query(f): Query<ListQuery>) -> PageResult {
    let page = s.chrome(&state, "Sessions", "sessions").await?;
    let (since, until) = match (
        super::day_bound(&f.from, false),
        super::day_bound(&f.to, true),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return render(&ListPage {
                page,
                f,
                rows: Vec::new(),
                error: Some(e),
            });
        }
    };
    let filter = Filter {
        identity: Some(f.identity.trim().to_string()).filter(|v| !v.is_empty()),
        target: Some(f.target.trim().to_string()).filter(|v| !v.is_empty()),
        live: match f.state.as_str() {
            "live" => Some(true),
            "ended" => Some(false),
            _ => None,
        },
        since_ms: since,
        until_ms: until,
        limit: if f.q.trim().is_empty() {
            200
        } else {
            SEARCH_WINDOW
        },
    };
    let found = {
        let mut c = conn(&state).await?;
        sessions::list(&mut c, &filter).await?
    };
    let needle = f.q.trim().to_lowercase();
    let mut rows = Vec::new();
    for s in found {
        if needle.is_empty() {
            rows.push(Row { s, hit: None });
            continue;
        }
        if let Some(idx) = index_of(&state, &s).await
            && let Some(hit) = find(&idx, &needle)
        {
            rows.push(Row { s, hit: Some(hit) });
        }
    }
    render(&ListPage {
        page,
        f,
        rows,
        error: None,
    })
}

async fn session(state: &AppState, id: &str) -> Result<Session, PageError> {
    let mut c = conn(state).await?;
    sessions::by_id(&mut c, id)
        .await?
        .ok_or_else(|| PageError::from(gatehouse_broker::Error::NotFound(format!("session {id}"))))
}

#[derive(Template)]
#[template(path = "replay.html")]
struct ReplayPage {
    page: Chrome,
    s: Session,
    commands: Vec<Command>,
    has_cast: bool,
    /// `verified`, `unverified: why`, or `pending` (live).
    signature: String,
    signed_sha256: String,
}

impl ReplayPage {
    fn when(&self, ms: &i64) -> String {
        when(*ms)
    }
    fn clock(&self, t: &f64) -> String {
        let t = t.max(0.0) as u64;
        format!("{}:{:02}", t / 60, t % 60)
    }
    fn verified(&self) -> bool {
        self.signature == "verified"
    }
}

async fn replay(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(f): Query<app_replay::Filters>,
) -> PageResult {
    let sess = session(&state, &id).await?;
    let path = cast_path(&state, &sess);
    let checked = check_signature(&state, &sess, path.as_ref()).await;
    let page = s.chrome(&state, "Session", "sessions").await?;
    if is_app(&sess) {
        return app_replay::page(page, sess, f, path.as_deref(), checked).await;
    }
    let has_cast = path.as_ref().is_some_and(|p| p.exists());
    let (signature, signed_sha256) = checked;
    let commands = match index_of(&state, &sess).await {
        Some(idx) => idx.commands.clone(),
        None => Vec::new(),
    };
    render(&ReplayPage {
        page,
        s: sess,
        commands,
        has_cast,
        signature,
        signed_sha256,
    })
}

/// The recording's signature check, as shown: (`verified` or why not, or pending while live;
/// the signed SHA-256 when verified).
async fn check_signature(
    state: &AppState,
    sess: &Session,
    path: Option<&PathBuf>,
) -> (String, String) {
    if sess.ended_at_ms.is_none() {
        (
            "pending: the manifest is signed when the session ends".to_string(),
            String::new(),
        )
    } else {
        match (path, &state.web.recording_key) {
            (Some(p), Some(key)) => {
                let p = p.clone();
                let key = *key;
                match tokio::task::spawn_blocking(move || {
                    gatehouse_recordings::manifest::verify(&p, |m, sig| key.verify(m, sig))
                })
                .await
                {
                    Ok(Ok(v)) => ("verified".to_string(), v.manifest.cast.sha256.clone()),
                    Ok(Err(e)) => (format!("NOT verified: {e}"), String::new()),
                    Err(_) => ("NOT verified: the check failed".to_string(), String::new()),
                }
            }
            (None, _) => ("NOT verified: no recording".to_string(), String::new()),
            (_, None) => (
                "NOT verified: no public key configured".to_string(),
                String::new(),
            ),
        }
    }
}

#[derive(Deserialize, Default)]
struct Download {
    #[serde(default)]
    download: Option<String>,
}

async fn file_response(path: PathBuf, mime: &'static str, name: String, attach: bool) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut resp = ([(header::CONTENT_TYPE, mime)], bytes).into_response();
            if attach
                && let Ok(v) =
                    header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
            {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(_) => crate::error::page(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this session has no recording file",
        )),
    }
}

async fn cast(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(d): Query<Download>,
) -> PageResult {
    let sess = session(&state, &id).await?;
    let path = cast_path(&state, &sess)
        .ok_or_else(|| PageError::from(gatehouse_broker::Error::NotFound("recording".into())))?;
    let (mime, name) = if is_app(&sess) {
        (
            "application/jsonl; charset=utf-8",
            format!("{id}{}", requests::EXTENSION),
        )
    } else {
        ("application/x-asciicast", format!("{id}.cast"))
    };
    Ok(file_response(path, mime, name, d.download.is_some()).await)
}

async fn manifest(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let sess = session(&state, &id).await?;
    let path = cast_path(&state, &sess)
        .ok_or_else(|| PageError::from(gatehouse_broker::Error::NotFound("recording".into())))?;
    let (_, m, _) = gatehouse_recordings::manifest::paths(&path);
    Ok(file_response(m, "application/json", format!("{id}.manifest.json"), true).await)
}

async fn signature(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let sess = session(&state, &id).await?;
    let path = cast_path(&state, &sess)
        .ok_or_else(|| PageError::from(gatehouse_broker::Error::NotFound("recording".into())))?;
    let (_, _, sig) = gatehouse_recordings::manifest::paths(&path);
    Ok(file_response(
        sig,
        "text/plain; charset=utf-8",
        format!("{id}.manifest.sig"),
        true,
    )
    .await)
}

/// The live view: the cast as it is written, one asciicast v2 line per websocket message
/// (asciinema-player's `v2.asciicast` protocol), until the session ends.
async fn live(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> PageResult {
    // Browsers send their page's origin on websocket handshakes: only our own pages may watch.
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let scheme = if state.web.cookies.secure() {
        "https"
    } else {
        "http"
    };
    let by_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| format!("{scheme}://{h}"));
    if origin != state.web.origin.as_str().trim_end_matches('/')
        && Some(origin) != by_host.as_deref()
    {
        return Err(PageError(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you are not allowed to do this",
        )));
    }
    let sess = session(&state, &id).await?;
    let path = cast_path(&state, &sess)
        .ok_or_else(|| PageError::from(gatehouse_broker::Error::NotFound("recording".into())))?;
    Ok(ws
        .protocols(["v2.asciicast"])
        .on_upgrade(move |socket| stream(socket, state, id, path))
        .into_response())
}

async fn stream(mut socket: WebSocket, state: AppState, id: String, path: PathBuf) {
    use tokio::io::AsyncReadExt;
    let mut file = None;
    let mut carry = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut ended_checks = 0u32;
    loop {
        if file.is_none() {
            file = tokio::fs::File::open(&path).await.ok();
        }
        let mut got = 0;
        if let Some(f) = file.as_mut() {
            got = f.read(&mut buf).await.unwrap_or(0);
            carry.extend_from_slice(&buf[..got]);
            while let Some(nl) = carry.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = carry.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if !text.is_empty() && socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        }
        if got > 0 {
            continue;
        }
        // Nothing new: stop once the session has ended and everything was sent.
        ended_checks += 1;
        if ended_checks.is_multiple_of(4) {
            let ended = match state.store.pool().acquire().await {
                Ok(mut c) => sessions::by_id(&mut c, &id)
                    .await
                    .ok()
                    .flatten()
                    .is_none_or(|s| s.ended_at_ms.is_some()),
                Err(_) => true,
            };
            if ended {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn terminate(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> PageResult {
    let mut tx = begin(&state).await?;
    match sessions::terminate(&mut tx, &s.actor(), state.clock.now_ms(), &id).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(Redirect::to(&format!("/sessions/{id}?terminated=1")).into_response())
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(output: &str) -> Index {
        Index {
            commands: Vec::new(),
            output: output.to_string(),
        }
    }

    #[test]
    fn security_one_recorded_character_never_breaks_the_search() {
        // U+212A KELVIN SIGN (3 bytes) lowercases to `k` (1 byte): offsets found in the
        // lowercased output used to slice the original and panicked.
        let idx = index("\u{212a}\nexfil-42-done\n");
        assert_eq!(
            find(&idx, "exfil-42").as_deref(),
            Some("output: exfil-42-done")
        );
        // U+0130 (2 bytes) lowercases to two characters (3 bytes): longer, not shorter.
        let idx = index("\u{130}\u{130}\u{130} then SECRET-7 and more");
        assert_eq!(
            find(&idx, "secret-7").as_deref(),
            Some("output: \u{130}\u{130}\u{130} then SECRET-7 and more")
        );
        assert_eq!(find(&idx, "absent"), None);
    }

    /// A small deterministic generator (xorshift) so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn char(&mut self) -> char {
            // Half the time a character whose case mapping changes its length or count,
            // otherwise any Unicode scalar value.
            const TRICKY: &[char] = &[
                '\u{212a}',
                '\u{130}',
                '\u{1e9e}',
                'ß',
                'Σ',
                'ς',
                'ﬁ',
                '\u{345}',
                'İ',
                'K',
                'k',
                '\n',
                'e',
                'x',
                '\u{1f600}',
                '\u{2c65}',
                '\u{23a}',
            ];
            if self.next().is_multiple_of(2) {
                TRICKY[(self.next() % TRICKY.len() as u64) as usize]
            } else {
                char::from_u32((self.next() % 0x11_0000) as u32).unwrap_or('\u{fffd}')
            }
        }
        fn string(&mut self, max: u64) -> String {
            let n = self.next() % max;
            (0..n).map(|_| self.char()).collect()
        }
    }

    #[test]
    fn security_search_over_arbitrary_unicode_never_panics_and_quotes_a_real_line() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let output = rng.string(60);
            let needle = rng.string(4).to_lowercase();
            let needle = needle.trim();
            if needle.is_empty() {
                continue;
            }
            match output_line(&output, needle) {
                Some(line) => {
                    assert!(output.split('\n').any(|l| l == line));
                    assert!(line.to_lowercase().contains(needle));
                }
                None => assert!(
                    !output
                        .split('\n')
                        .any(|l| l.to_lowercase().contains(needle))
                ),
            }
            let _ = find(&index(&output), needle);
        }
    }
}
