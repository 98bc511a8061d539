//! Sign-in throttling that cannot be turned into a lockout: attempts are limited per client
//! address, and per account only for browsers the account has not signed in from before (a
//! sealed "known device" cookie exempts them), so an attacker hammering an account slows down
//! their own guesses without locking its owner out. Limits refill; nothing is ever locked.
//! An IPv6 client is keyed by its /64, the block one host is usually given, so rotating through
//! its addresses buys no more guesses. Failed sign-ins are audited one row each up to a
//! server-wide rate; past it they are counted, and the next row written carries the count, so a
//! brute force from many addresses cannot fill the database.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// The limiters of one server.
#[derive(Debug)]
pub struct Throttle {
    address: DefaultKeyedRateLimiter<IpAddr>,
    account: DefaultKeyedRateLimiter<String>,
    /// Failed sign-ins audited one row each, server-wide.
    failures: DefaultDirectRateLimiter,
    /// Failed sign-ins not written since the last row.
    unrecorded: AtomicU64,
}

/// Failed sign-ins audited one row each per minute, server-wide (and at once).
const FAILURE_ROWS_PER_MINUTE: u32 = 600;

/// Most keys remembered before old ones are dropped (bounded memory).
const MAX_KEYS: usize = 100_000;

fn quota(per_minute: u32, burst: u32) -> Quota {
    let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n(per_minute)).allow_burst(n(burst))
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(30, 30, 5, 10)
    }
}

impl Throttle {
    /// Per address `addr_per_min` (burst `addr_burst`); per account from unknown browsers
    /// `account_per_min` (burst `account_burst`).
    pub fn new(
        addr_per_min: u32,
        addr_burst: u32,
        account_per_min: u32,
        account_burst: u32,
    ) -> Self {
        Self {
            address: RateLimiter::keyed(quota(addr_per_min, addr_burst)),
            account: RateLimiter::keyed(quota(account_per_min, account_burst)),
            failures: RateLimiter::direct(quota(FAILURE_ROWS_PER_MINUTE, FAILURE_ROWS_PER_MINUTE)),
            unrecorded: AtomicU64::new(0),
        }
    }

    /// The same limits with another server-wide budget of failure rows (for tests).
    #[cfg(test)]
    fn with_failure_rows(mut self, per_minute: u32) -> Self {
        self.failures = RateLimiter::direct(quota(per_minute, per_minute));
        self
    }

    /// Whether to write an audit row for one more failed sign-in: `Some(n)` writes it, noting
    /// the `n` failures left unwritten since the last row; `None` only counts it.
    pub fn failure_row(&self) -> Option<u64> {
        if self.failures.check().is_ok() {
            Some(self.unrecorded.swap(0, Ordering::AcqRel))
        } else {
            self.unrecorded.fetch_add(1, Ordering::AcqRel);
            None
        }
    }

    /// Counts one attempt; `Err(seconds)` says how long to wait when over a limit.
    pub fn attempt(&self, ip: IpAddr, account: &str, known_device: bool) -> Result<(), u64> {
        if self.address.len() > MAX_KEYS {
            self.address.retain_recent();
        }
        if self.account.len() > MAX_KEYS {
            self.account.retain_recent();
        }
        let now = DefaultClock::default().now();
        if let Err(w) = self.address.check_key(&client_block(ip)) {
            return Err(w.wait_time_from(now).as_secs().max(1));
        }
        if !known_device {
            let key: String = account.to_lowercase().chars().take(64).collect();
            if let Err(w) = self.account.check_key(&key) {
                return Err(w.wait_time_from(now).as_secs().max(1));
            }
        }
        Ok(())
    }
}

/// The address a client is throttled by: IPv4 as is (also when mapped into IPv6), IPv6 by /64.
fn client_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_account_throttling_spares_known_devices() {
        let t = Throttle::new(1000, 1000, 1, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.attempt(ip, "alice", false).is_ok());
        }
        // The attacker's fourth guess waits...
        assert!(t.attempt(ip, "alice", false).is_err());
        // ...but alice, on a browser she signed in from before, is not locked out.
        assert!(t.attempt(ip, "alice", true).is_ok());
        // Another account is unaffected.
        assert!(t.attempt(ip, "bob", false).is_ok());
        // Per address: a flood from one address is slowed whatever the account.
        let t = Throttle::new(1, 2, 1000, 1000);
        assert!(t.attempt(ip, "a", true).is_ok());
        assert!(t.attempt(ip, "b", true).is_ok());
        assert!(t.attempt(ip, "c", true).is_err());
    }

    #[test]
    fn security_rotating_ipv6_addresses_buys_no_more_guesses() {
        let t = Throttle::new(1, 2, 1000, 1000);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(t.attempt(ip("2001:db8:1:2::1"), "a", true).is_ok());
        assert!(t.attempt(ip("2001:db8:1:2:ffff::9"), "b", true).is_ok());
        // A third address of the same /64: throttled.
        assert!(
            t.attempt(ip("2001:db8:1:2:dead:beef::1"), "c", true)
                .is_err()
        );
        // Another /64 is another client.
        assert!(t.attempt(ip("2001:db8:1:3::1"), "d", true).is_ok());
        // IPv4, plain or mapped into IPv6, is one address.
        assert!(t.attempt(ip("192.0.2.1"), "e", true).is_ok());
        assert!(t.attempt(ip("::ffff:192.0.2.1"), "f", true).is_ok());
        assert!(t.attempt(ip("192.0.2.1"), "g", true).is_err());
        assert!(t.attempt(ip("192.0.2.2"), "h", true).is_ok());
    }

    #[test]
    fn security_failed_sign_ins_past_the_budget_are_counted_not_written() {
        let t = Throttle::default().with_failure_rows(3);
        let written: Vec<Option<u64>> = (0..10).map(|_| t.failure_row()).collect();
        // Three rows, then seven failures only counted: the database grows by three rows.
        assert_eq!(written[..3], [Some(0), Some(0), Some(0)]);
        assert!(written[3..].iter().all(Option::is_none), "{written:?}");
        assert_eq!(t.unrecorded.load(Ordering::Acquire), 7);
    }
}
