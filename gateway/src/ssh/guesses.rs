//! TOTP codes tried at SSH login, limited per identity across connections. A connection allows
//! three codes, but connections cost nothing to open, so without this whoever holds someone's key
//! could keep guessing their codes. Throttling, not lockout: the allowance refills (5 a minute
//! after a burst of 10), and codes past it fail without being checked or written to the audit
//! log, which therefore cannot be flooded from here either.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// The per-identity allowance of codes.
#[derive(Debug)]
pub struct TotpGuesses {
    limiter: DefaultKeyedRateLimiter<String>,
}

/// Most identities remembered before idle ones are dropped (bounded memory).
const MAX_KEYS: usize = 100_000;

impl TotpGuesses {
    /// `per_minute` codes per identity after a burst of `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        TotpGuesses {
            limiter: RateLimiter::keyed(Quota::per_minute(n(per_minute)).allow_burst(n(burst))),
        }
    }

    /// Whether one more code of `identity_id` may be checked now.
    pub fn allow(&self, identity_id: &str) -> bool {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&identity_id.to_string()).is_ok()
    }
}

impl Default for TotpGuesses {
    fn default() -> Self {
        TotpGuesses::new(5, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_totp_guesses_are_limited_per_identity() {
        let g = TotpGuesses::new(1, 10);
        for _ in 0..10 {
            assert!(g.allow("alice"));
        }
        assert!(!g.allow("alice"), "the eleventh code within a minute waits");
        assert!(g.allow("bob"), "another identity has its own allowance");
    }
}
