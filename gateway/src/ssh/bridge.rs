//! Bridges one session channel between the client and the target, both directions at once, each
//! waiting for the other side's window (so a slow reader slows the writer instead of growing a
//! buffer). Shell and exec sessions are recorded as asciicast v2 as they run; SFTP sessions as
//! markers naming each file operation. Ends when either side closes or enforcement ends it.

use super::Shared;
use super::sftp::SftpWatch;
use crate::enforce::{EndReason, LiveSession};
use gatehouse_broker::access::sessions::End;
use gatehouse_broker::clock::format_ms;
use gatehouse_recordings::manifest::{self, SessionInfo};
use gatehouse_recordings::{CastWriter, Header};
use russh::server::{self, Msg};
use russh::{Channel, ChannelMsg, client};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Environment variables a client may pass to the target.
fn env_allowed(name: &str) -> bool {
    name == "LANG" || name == "TZ" || name.starts_with("LC_")
}

/// What the bridge needs to know about its session.
pub struct Bridge {
    pub shared: Arc<Shared>,
    pub live: Arc<LiveSession>,
    pub handle: server::Handle,
    pub identity: String,
    pub target: String,
    pub login: String,
    pub grant: String,
    pub source: String,
    pub started_ms: i64,
}

/// The recording side of a session.
#[derive(Default)]
struct Recorder {
    cast: Option<CastWriter>,
    kind: Option<String>,
    pty: Option<(String, u32, u32)>,
    env: std::collections::BTreeMap<String, String>,
    sftp: Option<SftpWatch>,
    /// A write failed (strict mode ends the session).
    failed: bool,
    /// Stream bytes recorded so far, and those left out past the cap (exec without a PTY).
    recorded: u64,
    left_out: u64,
}

/// Output and input of an exec without a terminal (scp, rsync, `tar c | ssh … tar x`) are
/// recorded up to this much; the rest is counted in the end marker. Terminal sessions are
/// recorded whole: that is what the user saw and typed.
pub const EXEC_RECORD_CAP: u64 = 1024 * 1024;

/// One thing to write to the cast.
enum Ev<'a> {
    Out(&'a [u8]),
    In(&'a [u8]),
    Resize(u32, u32),
    Marker(&'a str),
    FlushIfDue,
}

impl Recorder {
    async fn note(&mut self, ev: Ev<'_>) {
        if let Ev::Out(d) | Ev::In(d) = ev {
            if self.pty.is_none()
                && self.kind.as_deref() == Some("exec")
                && self.recorded >= EXEC_RECORD_CAP
            {
                self.left_out += d.len() as u64;
                return;
            }
            self.recorded += d.len() as u64;
        }
        let Some(c) = self.cast.as_mut() else {
            return;
        };
        let done = match ev {
            Ev::Out(d) => c.output(d).await,
            Ev::In(d) => c.input(d).await,
            Ev::Resize(w, h) => c.resize(w, h).await,
            Ev::Marker(m) => c.marker(m).await,
            Ev::FlushIfDue => c.flush_if_due().await,
        };
        if let Err(e) = done {
            tracing::error!(error = %e, "recording write failed");
            self.failed = true;
        }
    }
}

fn relative_cast_path(b: &Bridge) -> std::path::PathBuf {
    gatehouse_recordings::index::relative_cast_path(b.started_ms, &b.live.id)
}

/// Starts the recording when the session's kind becomes known. Returns false when strict mode
/// must refuse the session.
async fn start_recording(b: &Bridge, rec: &tokio::sync::Mutex<Recorder>, kind: &str) -> bool {
    let mut r = rec.lock().await;
    if r.kind.is_some() {
        return true;
    }
    r.kind = Some(kind.to_string());
    let (term, w, h) = r.pty.clone().unwrap_or_else(|| (String::new(), 80, 24));
    let mut header = Header::new(
        w,
        h,
        b.started_ms / 1000,
        format!(
            "{} → {}@{} (session {})",
            b.identity, b.login, b.target, b.live.id
        ),
    );
    if !term.is_empty() {
        header.env.insert("TERM".into(), term);
    }
    header.env.extend(r.env.clone());
    let path = b.shared.settings.recordings_dir.join(relative_cast_path(b));
    match CastWriter::create(&path, &header).await {
        Ok(c) => {
            r.cast = Some(c);
            true
        }
        Err(e) => {
            tracing::error!(session = %b.live.id, error = %e, "cannot create the recording");
            !b.shared.settings.strict_recording
        }
    }
}

/// Runs a direction's reader and writer together; done when the writer is.
async fn until_written(reader: impl Future<Output = ()>, writer: impl Future<Output = ()>) {
    tokio::pin!(reader, writer);
    let mut reader_done = false;
    loop {
        tokio::select! {
            () = &mut writer => return,
            () = &mut reader, if !reader_done => reader_done = true,
        }
    }
}

/// Resolves when the access carrying `live` has ended: it sleeps until the access's end (a watch
/// value extensions move), then decides again — another grant or an extension carries it on —
/// and ends the session with the reason when nothing does.
pub async fn expiry(shared: &Shared, live: &LiveSession) {
    let mut deadline = live.deadline.subscribe();
    loop {
        let end = *deadline.borrow_and_update();
        match end {
            None => {
                if deadline.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Some(t) => {
                let left = (t - shared.clock.now_ms()).max(0);
                let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
                tokio::select! {
                    () = tokio::time::sleep(left) => {
                        let now = shared.clock.now_ms();
                        let cat = match shared.store.pool().acquire().await {
                            Ok(mut c) => shared.cache.current(&mut c, now).await.ok(),
                            Err(_) => None,
                        };
                        let verdict = match cat {
                            Some(cat) => crate::enforce::recheck(&cat, live, now, Some(EndReason::Expired)),
                            None => Some(EndReason::CheckFailed),
                        };
                        if let Some(reason) = verdict {
                            live.end(reason);
                            return;
                        }
                    }
                    r = deadline.changed() => if r.is_err() { std::future::pending::<()>().await },
                }
            }
        }
    }
}

/// Queues `msg` in direction `dir` once flow control admits it; false when the session must
/// end (the hard limit: the session is ended with `Overflow`) or the writer is gone.
async fn enqueue(
    flow: &super::flow::Flow,
    live: &LiveSession,
    dir: usize,
    msg: ChannelMsg,
    tx: &tokio::sync::mpsc::UnboundedSender<ChannelMsg>,
) -> bool {
    if flow.admit(dir, size_of(&msg)).await.is_err() {
        live.end(EndReason::Overflow);
        return false;
    }
    tx.send(msg).is_ok()
}

/// What a message weighs at least, for flow control: a flood of control messages (window
/// changes, signals, environment) fills a direction's queue like data does, instead of growing it
/// without bound while the other side is slow.
const MESSAGE_COST: usize = 256;

/// What a message weighs for flow control: the bytes it carries, and at least `MESSAGE_COST`.
fn size_of(msg: &ChannelMsg) -> usize {
    match msg {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
            data.len().max(MESSAGE_COST)
        }
        _ => MESSAGE_COST,
    }
}

/// How far the channel's two ends have got, so that each of EOF and CLOSE goes out at most once
/// per direction and nothing follows them (RFC 4254 §5.3: a strict client drops the connection
/// on a second EOF). After an EOF only requests (the exit status) may follow; after a CLOSE,
/// nothing. russh answers a peer's CLOSE itself and then drops what is sent on that channel, but
/// it sends an EOF each time one is asked for: the target's EOF passed on and another before our
/// CLOSE made two.
#[derive(Default)]
struct Ends {
    /// EOF sent to the client: no more data goes to it.
    eof_to_client: AtomicBool,
    /// EOF sent to the target: no more data goes to it.
    eof_to_target: AtomicBool,
    /// The client closed the channel (russh has answered): nothing more goes to it.
    client_closed: AtomicBool,
    /// The target closed the channel (russh has answered): nothing more goes to it.
    target_closed: AtomicBool,
}

impl Ends {
    /// Marks an EOF as sent; true the first time only.
    fn first_eof(sent: &AtomicBool) -> bool {
        !sent.swap(true, Ordering::AcqRel)
    }
}

/// How long the one-line end message may wait for the client's window.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the session to its end and returns how it ended (the manifest is written here).
pub async fn run(b: Bridge, down: Channel<Msg>, up: Channel<client::Msg>) -> End {
    let down_id = down.id();
    let (mut d_rx, d_tx) = down.split();
    let (mut u_rx, u_tx) = up.split();
    let rec = tokio::sync::Mutex::new(Recorder::default());
    let bytes_up = AtomicU64::new(0);
    let bytes_down = AtomicU64::new(0);
    let refused = AtomicBool::new(false);
    let ends = Ends::default();

    // Each direction is a reader that drains russh's channel queue into a queue of ours, under
    // the flow control of `super::flow` (which says why: without it a full-duplex transfer such
    // as `ssh … cat` deadlocks), and a writer that waits for the other side's window.
    let flow = super::flow::Flow::default();
    let (up_tx, mut up_rx) = tokio::sync::mpsc::unbounded_channel::<ChannelMsg>();
    let (down_tx, mut down_rx) = tokio::sync::mpsc::unbounded_channel::<ChannelMsg>();
    let (flow_ref, live_ref) = (&flow, &*b.live);
    let read_client = async move {
        while let Some(msg) = d_rx.wait().await {
            if !enqueue(flow_ref, live_ref, 0, msg, &up_tx).await {
                break;
            }
        }
    };
    let read_target = async move {
        while let Some(msg) = u_rx.wait().await {
            if !enqueue(flow_ref, live_ref, 1, msg, &down_tx).await {
                break;
            }
        }
    };
    let client_to_target = async {
        while let Some(msg) = up_rx.recv().await {
            flow.consumed(0, size_of(&msg));
            let sent = match msg {
                // Nothing after an EOF (a client sending on is ignored).
                ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. }
                    if ends.eof_to_target.load(Ordering::Acquire) =>
                {
                    Ok(())
                }
                ChannelMsg::Data { data } => {
                    bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
                    {
                        let mut r = rec.lock().await;
                        if let Some(w) = r.sftp.as_mut() {
                            let ops = w.feed(&data);
                            for op in ops {
                                r.note(Ev::Marker(&op)).await;
                            }
                        } else {
                            r.note(Ev::In(&data)).await;
                        }
                    }
                    u_tx.data_bytes(data).await
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
                    u_tx.extended_data_bytes(ext, data).await
                }
                // The client's half-close, passed on once; the target may still answer.
                ChannelMsg::Eof if Ends::first_eof(&ends.eof_to_target) => u_tx.eof().await,
                ChannelMsg::Eof => Ok(()),
                ChannelMsg::Close => {
                    ends.client_closed.store(true, Ordering::Release);
                    break;
                }
                ChannelMsg::RequestPty {
                    term,
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                    terminal_modes,
                    ..
                } => {
                    rec.lock().await.pty = Some((term.clone(), col_width, row_height));
                    u_tx.request_pty(
                        false,
                        &term,
                        col_width,
                        row_height,
                        pix_width,
                        pix_height,
                        &terminal_modes,
                    )
                    .await
                }
                ChannelMsg::SetEnv {
                    variable_name,
                    variable_value,
                    ..
                } => {
                    if env_allowed(&variable_name) {
                        rec.lock()
                            .await
                            .env
                            .insert(variable_name.clone(), variable_value.clone());
                        u_tx.set_env(false, variable_name, variable_value).await
                    } else {
                        Ok(())
                    }
                }
                ChannelMsg::RequestShell { .. } => {
                    if !start_recording(&b, &rec, "shell").await {
                        refused.store(true, Ordering::Release);
                        break;
                    }
                    u_tx.request_shell(true).await
                }
                ChannelMsg::Exec { command, .. } => {
                    if !start_recording(&b, &rec, "exec").await {
                        refused.store(true, Ordering::Release);
                        break;
                    }
                    let label = format!("exec: {}", String::from_utf8_lossy(&command));
                    rec.lock().await.note(Ev::Marker(&label)).await;
                    u_tx.exec(true, command).await
                }
                ChannelMsg::RequestSubsystem { name, .. } => {
                    if name != "sftp" || !start_recording(&b, &rec, "sftp").await {
                        refused.store(true, Ordering::Release);
                        break;
                    }
                    rec.lock().await.sftp = Some(SftpWatch::default());
                    u_tx.request_subsystem(true, name).await
                }
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    rec.lock()
                        .await
                        .note(Ev::Resize(col_width, row_height))
                        .await;
                    u_tx.window_change(col_width, row_height, pix_width, pix_height)
                        .await
                }
                ChannelMsg::Signal { signal } => u_tx.signal(signal).await,
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
    };

    let target_to_client = async {
        while let Some(msg) = down_rx.recv().await {
            flow.consumed(1, size_of(&msg));
            let ok = match msg {
                // Nothing after an EOF (a target sending on is ignored).
                ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. }
                    if ends.eof_to_client.load(Ordering::Acquire) =>
                {
                    true
                }
                ChannelMsg::Data { data } => {
                    bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
                    {
                        let mut r = rec.lock().await;
                        if r.sftp.is_none() {
                            r.note(Ev::Out(&data)).await;
                        }
                    }
                    d_tx.data_bytes(data).await.is_ok()
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
                    rec.lock().await.note(Ev::Out(&data)).await;
                    d_tx.extended_data_bytes(ext, data).await.is_ok()
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    d_tx.exit_status(exit_status).await.is_ok()
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                } => b
                    .handle
                    .exit_signal_request(down_id, signal_name, core_dumped, error_message, lang_tag)
                    .await
                    .is_ok(),
                // The target's EOF, passed on once; its exit status may follow.
                ChannelMsg::Eof if Ends::first_eof(&ends.eof_to_client) => d_tx.eof().await.is_ok(),
                ChannelMsg::Eof => true,
                ChannelMsg::Close => {
                    ends.target_closed.store(true, Ordering::Release);
                    break;
                }
                ChannelMsg::Failure => break,
                _ => true,
            };
            if !ok {
                break;
            }
        }
    };

    // Buffered recording data reaches the disk at least once a second.
    let flusher = async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let mut r = rec.lock().await;
            r.note(Ev::FlushIfDue).await;
            if r.failed && b.shared.settings.strict_recording {
                return;
            }
        }
    };

    let expiry = expiry(&b.shared, &b.live);

    // A direction is done when its writer is: the reader ends with the channel and closes the
    // queue behind the last message; a writer that stops early (refusal, closed peer) ends it.
    let client_to_target = until_written(read_client, client_to_target);
    let target_to_client = until_written(read_target, target_to_client);
    let reason: String = tokio::select! {
        () = client_to_target => if refused.load(Ordering::Acquire) { EndReason::RecordingFailed.code().into() } else { "client_closed".into() },
        () = target_to_client => "target_closed".into(),
        () = flusher => {
            b.live.end(EndReason::RecordingFailed);
            EndReason::RecordingFailed.code().into()
        }
        () = expiry => b.live.reason().unwrap_or(EndReason::Expired).code().into(),
        r = b.live.killed() => r.code().into(),
    };

    // The target first (when Gatehouse ends the session it must stop at once), then — unless
    // the client closed already — one line to the user when Gatehouse ended it (it may wait for
    // the client's window only so long; not after an EOF), the EOF unless the target's was passed
    // on, and the CLOSE. Each goes once; nothing follows the CLOSE.
    if !ends.target_closed.load(Ordering::Acquire) {
        let _ = u_tx.close().await;
    }
    if !ends.client_closed.load(Ordering::Acquire) {
        let ended_by_gatehouse = b.live.reason().or(refused
            .load(Ordering::Acquire)
            .then_some(EndReason::RecordingFailed));
        if let Some(why) = ended_by_gatehouse
            && !ends.eof_to_client.load(Ordering::Acquire)
        {
            let pty = rec.lock().await.pty.is_some();
            let line = format!("gatehouse: session ended: {}", why.message());
            let notice = async {
                if pty {
                    d_tx.data_bytes(format!("\r\n{line}\r\n").into_bytes())
                        .await
                } else {
                    d_tx.extended_data_bytes(1, format!("{line}\n").into_bytes())
                        .await
                }
            };
            let _ = tokio::time::timeout(NOTICE_TIMEOUT, notice).await;
        }
        if Ends::first_eof(&ends.eof_to_client) {
            let _ = d_tx.eof().await;
        }
        let _ = d_tx.close().await;
    }

    let mut r = rec.into_inner();
    let kind = r.kind.clone().unwrap_or_else(|| "session".into());
    let mut recording = None;
    if let Some(mut cast) = r.cast.take() {
        if r.left_out > 0 {
            let _ = cast
                .marker(&format!(
                    "{} more bytes of output and input not recorded (exec without a terminal is recorded up to {} bytes)",
                    r.left_out, EXEC_RECORD_CAP
                ))
                .await;
        }
        let _ = cast.marker(&format!("end: {reason}")).await;
        match cast.finish().await {
            Ok(summary) => {
                let info = SessionInfo {
                    id: b.live.id.clone(),
                    identity: b.identity.clone(),
                    target: b.target.clone(),
                    login: b.login.clone(),
                    grant: b.grant.clone(),
                    kind: kind.clone(),
                    source: b.source.clone(),
                    started_at: format_ms(b.started_ms),
                    ended_at: format_ms(b.shared.clock.now_ms()),
                };
                let signer = b.shared.signer.clone();
                let public = signer.public().to_string();
                let written = manifest::write(&summary, info, &reason, &public, |m| signer.sign(m));
                match written {
                    Ok(_) => recording = Some(relative_cast_path(&b).display().to_string()),
                    Err(e) => {
                        tracing::error!(session = %b.live.id, error = %e, "cannot write the recording manifest")
                    }
                }
            }
            Err(e) => {
                tracing::error!(session = %b.live.id, error = %e, "cannot finish the recording")
            }
        }
    }
    End {
        reason,
        bytes_up: bytes_up.load(Ordering::Relaxed),
        bytes_down: bytes_down.load(Ordering::Relaxed),
        recording,
        kind: Some(kind),
        requests: None,
    }
}

/// Copies a forwarded port's bytes both ways (half-closes passed on, once each) until either
/// side closes, or until the access carrying it ends.
pub async fn raw(
    shared: &Shared,
    live: &LiveSession,
    down: Channel<Msg>,
    up: Channel<client::Msg>,
) {
    let (mut d_rx, d_tx) = down.split();
    let (mut u_rx, u_tx) = up.split();
    let ends = Ends::default();
    let to_target = async {
        while let Some(m) = d_rx.wait().await {
            let sent = match m {
                ChannelMsg::Data { .. } if ends.eof_to_target.load(Ordering::Acquire) => Ok(()),
                ChannelMsg::Data { data } => u_tx.data_bytes(data).await,
                ChannelMsg::Eof if Ends::first_eof(&ends.eof_to_target) => u_tx.eof().await,
                ChannelMsg::Close => {
                    ends.client_closed.store(true, Ordering::Release);
                    break;
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
    };
    let to_client = async {
        while let Some(m) = u_rx.wait().await {
            let sent = match m {
                ChannelMsg::Data { .. } if ends.eof_to_client.load(Ordering::Acquire) => Ok(()),
                ChannelMsg::Data { data } => d_tx.data_bytes(data).await,
                ChannelMsg::Eof if Ends::first_eof(&ends.eof_to_client) => d_tx.eof().await,
                ChannelMsg::Close => {
                    ends.target_closed.store(true, Ordering::Release);
                    break;
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
    };
    // A loop ends only when its side closed (an EOF is passed on and reading goes on).
    tokio::select! {
        () = to_target => {}
        () = to_client => {}
        _ = live.killed() => {}
        () = expiry(shared, live) => {}
    }
    if !ends.target_closed.load(Ordering::Acquire) {
        let _ = u_tx.close().await;
    }
    if !ends.client_closed.load(Ordering::Acquire) {
        let _ = d_tx.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::flow::{Flow, SOFT_LIMIT};

    #[tokio::test]
    async fn security_a_flood_of_control_messages_meets_the_queue_limit() {
        let resize = ChannelMsg::WindowChange {
            col_width: 80,
            row_height: 24,
            pix_width: 0,
            pix_height: 0,
        };
        assert_eq!(size_of(&resize), MESSAGE_COST);
        let keystroke = ChannelMsg::Data {
            data: bytes::Bytes::from_static(b"x"),
        };
        assert_eq!(size_of(&keystroke), MESSAGE_COST);
        // Nobody drains the queue: the flood is admitted up to the soft limit, then waits.
        let flow = Flow::default();
        for _ in 0..SOFT_LIMIT / MESSAGE_COST {
            flow.admit(0, size_of(&resize)).await.unwrap();
        }
        let next =
            tokio::time::timeout(Duration::from_millis(50), flow.admit(0, size_of(&resize))).await;
        assert!(next.is_err(), "a control message past the limit must wait");
    }
}
