//! Ambiguous request framing, seen before hyper resolves it. hyper reads a request carrying
//! both `Content-Length` and `Transfer-Encoding` as chunked (dropping the length) and closes the
//! connection after it, and keeps one of several equal `Content-Length` lines: safe, but the
//! handler can no longer tell. Such a request is how smuggling starts, so the gateway refuses
//! it with 400 (RFC 9112 §6.3 allows either). [`Sniffed`] wraps a connection's byte stream and
//! parses each HTTP/1 request head with `httparse` (hyper's own parser) as hyper reads it,
//! following message boundaries while bodies have a declared length; after a chunked body, an
//! upgrade, HTTP/2 or anything it cannot parse it stops looking (hyper still frames those
//! itself); so that no later head on that connection goes unchecked, the request after which it
//! stopped (a chunked one, say) is answered with `Connection: close`. The handler asks
//! [`Framing::check`] for the request it is answering.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest head followed (hyper refuses longer ones itself: its buffer is 64 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines parsed (hyper's own limit is 100).
const MAX_HEADERS: usize = 100;

/// What a connection's reader found, shared with its request handler.
#[derive(Debug, Default)]
pub struct Framing {
    /// The number (from 1) of the first request whose head was ambiguous; 0: none.
    first_ambiguous: AtomicU64,
    /// The number of the request after which the reader stopped following (chunked body,
    /// unreadable length); 0: none.
    stopped_after: AtomicU64,
    /// Requests handled so far on the connection.
    handled: AtomicU64,
}

/// What to do with a request, as far as its framing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Fine,
    /// Refuse it with 400 and close (this head, or an earlier one, was ambiguous).
    Ambiguous,
    /// Answer it, then close: heads after it would not be checked.
    Last,
}

impl Framing {
    /// Called once per request, in order (HTTP/1 asks one at a time).
    pub fn check(&self) -> Verdict {
        let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
        let first = self.first_ambiguous.load(Ordering::SeqCst);
        let stopped = self.stopped_after.load(Ordering::SeqCst);
        if first != 0 && n >= first {
            Verdict::Ambiguous
        } else if stopped != 0 && n >= stopped {
            Verdict::Last
        } else {
            Verdict::Fine
        }
    }
}

#[derive(Debug)]
enum State {
    /// Reading a head (bytes so far).
    Head(Vec<u8>),
    /// Inside a body of declared length: bytes left.
    Body(u64),
    /// No longer following the stream.
    Blind,
}

/// A byte stream whose request heads are checked as they are read (see the module).
#[derive(Debug)]
pub struct Sniffed<T> {
    inner: T,
    state: State,
    heads: u64,
    framing: Arc<Framing>,
}

impl<T> Sniffed<T> {
    pub fn new(inner: T, framing: Arc<Framing>) -> Self {
        Self {
            inner,
            state: State::Head(Vec::new()),
            heads: 0,
            framing,
        }
    }

    /// Follows `bytes`, just read.
    fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Blind => return,
                State::Body(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(&bytes[..bytes.len().min(MAX_HEAD + 1 - before)]);
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut req = httparse::Request::new(&mut headers);
                    match req.parse(buf) {
                        Ok(httparse::Status::Complete(end)) => {
                            self.heads += 1;
                            let next = head_then(req.headers);
                            if next.is_none() {
                                self.framing
                                    .first_ambiguous
                                    .compare_exchange(
                                        0,
                                        self.heads,
                                        Ordering::SeqCst,
                                        Ordering::SeqCst,
                                    )
                                    .ok();
                            }
                            let upgrade = req.method == Some("CONNECT")
                                || req
                                    .headers
                                    .iter()
                                    .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
                            // What of `bytes` belonged to this head.
                            let used = end - before;
                            bytes = &bytes[used.min(bytes.len())..];
                            if next == Some(Next::Unknown) && !upgrade {
                                self.framing
                                    .stopped_after
                                    .compare_exchange(
                                        0,
                                        self.heads,
                                        Ordering::SeqCst,
                                        Ordering::SeqCst,
                                    )
                                    .ok();
                            }
                            self.state = match next {
                                Some(_) if upgrade => State::Blind,
                                Some(Next::Body(0)) => State::Head(Vec::new()),
                                Some(Next::Body(n)) => State::Body(n),
                                Some(Next::Unknown) | None => State::Blind,
                            };
                        }
                        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return,
                        _ => self.state = State::Blind,
                    }
                }
            }
        }
    }
}

/// What follows a head.
#[derive(Debug, PartialEq)]
enum Next {
    /// A body of this many bytes (0: none).
    Body(u64),
    /// A body framed some other way (chunked) or unreadably: stop following.
    Unknown,
}

/// `None`: the head is ambiguous (both `Content-Length` and `Transfer-Encoding`, or more than
/// one `Content-Length`).
fn head_then(headers: &[httparse::Header<'_>]) -> Option<Next> {
    let lengths: Vec<&[u8]> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value)
        .collect();
    let chunked = headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    match (lengths.as_slice(), chunked) {
        ([_, ..], true) | ([_, _, ..], false) => None,
        ([], true) => Some(Next::Unknown),
        ([], false) => Some(Next::Body(0)),
        ([one], false) => Some(
            std::str::from_utf8(one)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .map_or(Next::Unknown, Next::Body),
        ),
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && !matches!(self.state, State::Blind)
        {
            let this = &mut *self;
            this.follow(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]]) -> Sniffed<()> {
        let mut s = Sniffed::new((), Arc::default());
        for c in chunks {
            s.follow(c);
        }
        s
    }

    fn ambiguous_from(s: &Sniffed<()>) -> u64 {
        s.framing.first_ambiguous.load(Ordering::SeqCst)
    }

    #[test]
    fn security_content_length_with_transfer_encoding_is_ambiguous_in_any_order() {
        for head in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
        ] {
            assert_eq!(ambiguous_from(&read_all(&[head])), 1, "{head:?}");
        }
    }

    #[test]
    fn security_an_ambiguous_head_later_on_a_keep_alive_connection_is_found_in_pieces() {
        let first = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let second = b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        let third = b"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut all = Vec::new();
        all.extend_from_slice(first);
        all.extend_from_slice(second);
        all.extend_from_slice(third);
        // Byte by byte and all at once.
        let pieces: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(ambiguous_from(&read_all(&pieces)), 3);
        assert_eq!(ambiguous_from(&read_all(&[&all])), 3);
        let f = Framing {
            first_ambiguous: AtomicU64::new(3),
            stopped_after: AtomicU64::new(0),
            handled: AtomicU64::new(0),
        };
        assert_eq!(
            [f.check(), f.check(), f.check()],
            [Verdict::Fine, Verdict::Fine, Verdict::Ambiguous]
        );
    }

    #[test]
    fn a_body_that_looks_like_a_head_is_not_read_as_one() {
        let body = b"X\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = read_all(&[head.as_bytes(), body, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]);
        assert_eq!(ambiguous_from(&s), 0);
        assert!(matches!(s.state, State::Head(ref b) if b.is_empty()));
    }

    #[test]
    fn security_a_chunked_request_is_the_last_on_its_connection() {
        let s = read_all(&[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ]);
        let f = &s.framing;
        assert_eq!(
            [f.check(), f.check(), f.check()],
            [Verdict::Fine, Verdict::Last, Verdict::Last]
        );
        // An upgrade is not: the connection becomes the websocket's.
        let s = read_all(&[
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ]);
        assert_eq!(s.framing.check(), Verdict::Fine);
    }

    #[test]
    fn chunked_bodies_upgrades_and_http2_stop_the_following() {
        for start in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            let s = read_all(&[start]);
            assert!(matches!(s.state, State::Blind), "{start:?}");
            assert_eq!(ambiguous_from(&s), 0);
        }
    }
}
