//! The read buffer under each SSH socket, held only while data flows. russh reads every packet
//! with two exact reads (length, then the rest); a 64 KiB buffer turns those into about one
//! system call per 64 KiB during a transfer. An idle session would pin two such buffers (one
//! per side) for hours, so the buffer is released when a read finds the socket empty after a
//! small fill, and allocated again when data comes. The socket reads into the buffer's spare
//! capacity, so a new buffer is never zeroed first (perf had shown that memset at ~2% of the
//! gateway's time during a transfer).
//!
//! The first reads of a connection also push out any ACK the kernel is holding back
//! (`TCP_QUICKACK`). OpenSSH writes without `TCP_NODELAY` when a session has no terminal: sshd,
//! after authentication, sends one small packet and holds the next ones (the channel's
//! confirmation) until that one is acknowledged, and Linux delays the acknowledgement by 40 ms;
//! the OpenSSH client does the same towards the gateway. Opening `ssh … true` through Gatehouse
//! took p50 132–152 ms before and 93 ms after, against 145–153 ms directly (BENCHMARKS.md).

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from a socket at a time while data flows.
pub(super) const READ_BUFFER: usize = 64 * 1024;

/// A fill smaller than this before the socket runs dry means the connection is not streaming.
const QUIET_FILL: usize = READ_BUFFER / 4;

/// Reads after which acknowledgements go back to the kernel's own timing: a connection is
/// authenticated and its first channel open after about ten.
const QUICK_ACK_READS: u32 = 32;

/// Sets `TCP_QUICKACK` on a socket.
type QuickAck<S> = fn(&S);

/// A buffered reader (and pass-through writer) whose buffer exists only while data flows.
#[derive(Debug)]
pub(super) struct FlowBuf<S> {
    inner: S,
    /// The bytes read and not yet handed out.
    buf: Option<BytesMut>,
    last_fill: usize,
    /// Sets `TCP_QUICKACK` on the socket (borrowed, no second descriptor), and how many reads
    /// still do it.
    quick_ack: Option<(QuickAck<S>, u32)>,
}

impl<S> FlowBuf<S> {
    pub(super) fn new(inner: S) -> Self {
        FlowBuf {
            inner,
            buf: None,
            last_fill: 0,
            quick_ack: None,
        }
    }

    /// Also acknowledges at once what the first reads found (see the module's documentation).
    pub(super) fn quick_acks(mut self) -> Self
    where
        S: std::os::fd::AsFd,
    {
        let ack: QuickAck<S> = |socket| {
            let _ = socket2::SockRef::from(socket).set_tcp_quickack(true);
        };
        self.quick_ack = Some((ack, QUICK_ACK_READS));
        self
    }

    /// Sends now an acknowledgement the kernel holds back, for the first reads only.
    fn ack_now(&mut self) {
        if let Some((ack, left)) = self.quick_ack.as_mut() {
            ack(&self.inner);
            *left -= 1;
            if *left == 0 {
                self.quick_ack = None;
            }
        }
    }

    /// Whether a buffer is held now (for tests).
    #[cfg(test)]
    fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FlowBuf<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.buf.as_ref().is_none_or(|b| b.is_empty()) {
            // A read as large as the buffer gains nothing from it.
            if out.remaining() >= READ_BUFFER {
                let read = Pin::new(&mut this.inner).poll_read(cx, out);
                if read.is_ready() {
                    this.ack_now();
                }
                return read;
            }
            let buf = this
                .buf
                .get_or_insert_with(|| BytesMut::with_capacity(READ_BUFFER));
            // Empty: this takes back the whole allocation, without copying or zeroing.
            buf.reserve(READ_BUFFER);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, buf) {
                Poll::Pending => {
                    // Dry after a small fill: not streaming. (A burst usually ends with a small
                    // fill, so a buffer kept after a large one goes at the end of the burst.)
                    if this.last_fill < QUIET_FILL {
                        this.buf = None;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(r) => this.last_fill = r?,
            }
            this.ack_now();
        }
        let Some(buf) = this.buf.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let n = out.remaining().min(buf.len());
        out.put_slice(&buf[..n]);
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FlowBuf<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
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
        ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_arrive_in_order_and_an_idle_reader_holds_no_buffer() {
        let (a, mut b) = tokio::io::duplex(256 * 1024);
        let mut r = FlowBuf::new(a);
        // A stream larger than the buffer, read in small exact pieces as russh does.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            b.write_all(&sent).await.unwrap();
            b
        });
        let mut got = vec![0u8; data.len()];
        for chunk in got.chunks_mut(4 + 1000) {
            r.read_exact(chunk).await.unwrap();
        }
        assert_eq!(got, data);
        let mut b = writer.await.unwrap();
        // A few small reads, then nothing to read: the buffer goes.
        b.write_all(b"hello").await.unwrap();
        let mut five = [0u8; 5];
        r.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"hello");
        let mut one = [0u8; 1];
        let idle = tokio::time::timeout(std::time::Duration::from_millis(20), r.read(&mut one));
        assert!(idle.await.is_err(), "nothing to read");
        assert!(!r.holds_buffer());
        // Data again: read as before.
        b.write_all(b"x").await.unwrap();
        r.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
        // Writes pass through.
        r.write_all(b"back").await.unwrap();
        let mut four = [0u8; 4];
        b.read_exact(&mut four).await.unwrap();
        assert_eq!(&four, b"back");
    }

    #[tokio::test]
    async fn the_first_reads_of_a_tcp_socket_acknowledge_at_once_and_then_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let mut sender = client.unwrap();
        let mut r = FlowBuf::new(accepted.unwrap().0).quick_acks();
        assert!(r.quick_ack.is_some());
        for i in 0..(QUICK_ACK_READS + 8) {
            let msg = [i as u8; 3];
            sender.write_all(&msg).await.unwrap();
            let mut got = [0u8; 3];
            r.read_exact(&mut got).await.unwrap();
            assert_eq!(got, msg);
        }
        assert!(
            r.quick_ack.is_none(),
            "back to the kernel's timing after the first reads"
        );
    }
}
