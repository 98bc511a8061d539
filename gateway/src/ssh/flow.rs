//! Flow control between the two halves of a bridged channel. russh credits a peer's window as
//! soon as a packet arrives and then blocks its whole connection loop while the channel's queue
//! is full — so a loop blocked on one direction stops reading the window adjustments the other
//! direction waits for. When both directions are held up that way at once (a full-duplex
//! transfer such as `ssh … cat`), nothing moves again. Each direction therefore queues up to a
//! soft limit and then waits (backpressure), except while the other direction is itself waiting:
//! then it keeps accepting, up to a hard limit past which the session is ended. Normal use stays
//! under the soft limit; the hard limit bounds what a client that writes and never reads costs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Bytes a direction queues before it waits for its writer.
pub const SOFT_LIMIT: usize = 4 * 1024 * 1024;
/// Bytes a direction may queue while the other direction waits; beyond, the session ends.
pub const HARD_LIMIT: usize = 64 * 1024 * 1024;

/// The two directions of one channel: 0 = client to target, 1 = target to client.
#[derive(Debug, Default)]
pub struct Flow {
    queued: [AtomicUsize; 2],
    waiting: [AtomicBool; 2],
    changed: Notify,
}

/// The hard limit was reached.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

impl Flow {
    /// Waits until `size` more bytes may be queued in direction `dir`.
    pub async fn admit(&self, dir: usize, size: usize) -> Result<(), Overflow> {
        let other = 1 - dir;
        loop {
            // Registered before the checks, so no change between check and wait is missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queued = self.queued[dir].load(Ordering::Acquire);
            if queued + size <= SOFT_LIMIT || self.waiting[other].load(Ordering::Acquire) {
                if self.waiting[dir].swap(false, Ordering::AcqRel) {
                    self.changed.notify_waiters();
                }
                if queued + size > HARD_LIMIT {
                    return Err(Overflow);
                }
                self.queued[dir].fetch_add(size, Ordering::AcqRel);
                return Ok(());
            }
            if !self.waiting[dir].swap(true, Ordering::AcqRel) {
                self.changed.notify_waiters();
            }
            notified.await;
        }
    }

    /// `size` bytes of direction `dir` left the queue.
    pub fn consumed(&self, dir: usize, size: usize) {
        self.queued[dir].fetch_sub(size, Ordering::AcqRel);
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_direction_waits_at_the_soft_limit_unless_the_other_waits_too() {
        let f = Arc::new(Flow::default());
        f.admit(0, SOFT_LIMIT).await.unwrap();
        // Direction 0 is full: the next admit waits...
        let waiting = tokio::spawn({
            let f = f.clone();
            async move { f.admit(0, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // ...until its writer consumes.
        f.consumed(0, 1024);
        assert_eq!(waiting.await.unwrap(), Ok(()));

        // Both full: whichever waits second goes on (no deadlock), up to the hard limit.
        let g = Arc::new(Flow::default());
        g.admit(0, SOFT_LIMIT).await.unwrap();
        g.admit(1, SOFT_LIMIT).await.unwrap();
        let a = tokio::spawn({
            let g = g.clone();
            async move { g.admit(0, 1).await }
        });
        let b = tokio::spawn({
            let g = g.clone();
            async move { g.admit(1, 1).await }
        });
        let first = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                if a.is_finished() || b.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(first.is_ok(), "both directions waited for each other");
    }

    #[tokio::test]
    async fn past_the_hard_limit_the_session_overflows() {
        let f = Arc::new(Flow::default());
        f.admit(1, SOFT_LIMIT).await.unwrap();
        // Direction 1 waits at its soft limit...
        let _blocked = tokio::spawn({
            let f = f.clone();
            async move { f.admit(1, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...so direction 0 may go past its soft limit, but not past the hard one.
        f.admit(0, SOFT_LIMIT + 1).await.unwrap();
        assert_eq!(f.admit(0, HARD_LIMIT).await, Err(Overflow));
    }
}
