//! Leases: in-memory pins that keep a blob or layer alive while an operation
//! (load, import, commit) that has made it but not yet referenced it from an
//! image is still running. Garbage collection skips leased keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Leases(Arc<Mutex<HashMap<String, usize>>>);

/// Held while the key must survive; dropping it releases the pin.
pub struct Lease {
    leases: Leases,
    key: String,
}

impl Leases {
    pub fn acquire(&self, key: &str) -> Lease {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(key.to_string()).or_default() += 1;
        Lease {
            leases: self.clone(),
            key: key.to_string(),
        }
    }

    pub fn is_leased(&self, key: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).is_some_and(|n| *n > 0)
    }
}

impl Lease {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Clone for Lease {
    fn clone(&self) -> Self {
        self.leases.acquire(&self.key)
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({})", self.key)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut m = self.leases.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pins_until_dropped() {
        let l = super::Leases::default();
        let a = l.acquire("x");
        let b = a.clone();
        drop(a);
        assert!(l.is_leased("x"));
        drop(b);
        assert!(!l.is_leased("x"));
    }
}
