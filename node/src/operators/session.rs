//! Staff sessions: a random 256-bit id (the cookie), the account, a per-session
//! CSRF token, and an idle expiry checked on the server against the node's
//! clock. Held in memory only: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;
use subtle::ConstantTimeEq;

/// Idle time after which a session ends (30 minutes).
pub const IDLE_SECONDS: u64 = 30 * 60;
/// Most sessions held at once (the oldest idle ones go first).
pub const MAX_SESSIONS: usize = 1024;

/// One logged-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    /// The account name.
    pub account: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Last request, unix seconds.
    last_seen: u64,
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, token: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The sessions of one gateway.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `account` at `now`: its id (the cookie value).
    pub fn create(&self, account: &str, now: u64) -> String {
        let id = random_hex();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| now.saturating_sub(s.last_seen) < IDLE_SECONDS);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                account: account.to_owned(),
                csrf: random_hex(),
                last_seen: now,
            },
        );
        id
    }

    /// The live session `id` at `now` (its idle time restarts), or `None` if
    /// there is none or it was idle too long (then it is removed).
    pub fn touch(&self, id: &str, now: u64) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(id)?;
        if now.saturating_sub(s.last_seen) >= IDLE_SECONDS || now < s.last_seen {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Ends every session of `account` (disabled, password reset).
    pub fn end_all_of(&self, account: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.account != account);
    }
}
