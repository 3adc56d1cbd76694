//! Login throttling: per account name and per client address, exponential
//! backoff after repeated failures. A key with [`FREE_FAILURES`] failures in a
//! row is locked for 2 s, then 4 s, 8 s, ... up to [`MAX_LOCK_SECONDS`]; a
//! success clears it. In memory only (a restart clears it, which an attacker
//! cannot trigger).

use std::collections::HashMap;
use std::sync::Mutex;

/// Failures in a row before the first lock.
pub const FREE_FAILURES: u32 = 3;
/// The longest lock.
pub const MAX_LOCK_SECONDS: u64 = 15 * 60;
/// Most keys tracked (beyond: unlocked keys are dropped first).
const MAX_KEYS: usize = 65_536;

#[derive(Clone, Copy, Default)]
struct State {
    failures: u32,
    locked_until: u64,
}

/// Failure counts by key.
#[derive(Default)]
pub struct Throttle {
    map: Mutex<HashMap<String, State>>,
}

impl Throttle {
    /// `Err(seconds to wait)` while any of `keys` is locked at `now`.
    pub fn check(&self, keys: &[String], now: u64) -> Result<(), u64> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| map.get(k))
            .map(|s| s.locked_until.saturating_sub(now))
            .max()
            .unwrap_or(0);
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }

    /// Counts a failure against each of `keys` at `now`.
    pub fn failure(&self, keys: &[String], now: u64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, s| s.locked_until > now);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for k in keys {
            let s = map.entry(k.clone()).or_default();
            s.failures = s.failures.saturating_add(1);
            if s.failures >= FREE_FAILURES {
                let exp = (s.failures - FREE_FAILURES + 1).min(20);
                s.locked_until = now + (1u64 << exp).min(MAX_LOCK_SECONDS);
            }
        }
    }

    /// Clears `keys` after a success.
    pub fn success(&self, keys: &[String]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_success_clears() {
        let t = Throttle::default();
        let k = vec!["account a".to_owned()];
        for _ in 0..FREE_FAILURES - 1 {
            t.failure(&k, 100);
            assert_eq!(t.check(&k, 100), Ok(()));
        }
        t.failure(&k, 100);
        assert_eq!(t.check(&k, 100), Err(2));
        assert_eq!(t.check(&k, 102), Ok(()));
        t.failure(&k, 102);
        assert_eq!(t.check(&k, 102), Err(4));
        t.success(&k);
        assert_eq!(t.check(&k, 102), Ok(()));
    }
}
