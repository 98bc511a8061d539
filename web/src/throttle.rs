//! Sign-in throttling that cannot be turned into a lockout: attempts are limited per client
//! address, and per account only for browsers the account has not signed in from before (a
//! sealed "known device" cookie exempts them), so an attacker hammering an account slows down
//! their own guesses without locking its owner out. Limits refill; nothing is ever locked.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// The limiters of one server.
#[derive(Debug)]
pub struct Throttle {
    address: DefaultKeyedRateLimiter<IpAddr>,
    account: DefaultKeyedRateLimiter<String>,
}

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
        if let Err(w) = self.address.check_key(&ip) {
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
}
