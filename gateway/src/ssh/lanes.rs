//! Connection lanes: a few single-threaded runtimes, one OS thread each, and every SSH connection
//! runs on one of them, all its tasks together — both russh sessions, the channel bridges and the
//! recording. A byte crossing the gateway passes three tasks each way; on one thread those hand
//! over without waking another core (on the 2-core benchmark box the multi-threaded runtime spent
//! a fifth of the gateway's time in cross-thread wake-ups). Connections are spread round-robin,
//! so all cores still serve many sessions.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The lane runtimes; they stop when this is dropped.
#[derive(Debug)]
pub(super) struct Lanes {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
}

impl Lanes {
    /// Starts `n` lanes (at least one).
    pub(super) fn start(n: usize) -> std::io::Result<Lanes> {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("ssh-lane-{i}"))
                .spawn(move || rt.block_on(stop.cancelled()))?;
        }
        Ok(Lanes {
            handles,
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// The lane for the next connection.
    pub(super) fn pick(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        // Never empty: `start` makes at least one.
        &self.handles[i % self.handles.len()]
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How many lanes: one per core the process may use.
pub(super) fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
