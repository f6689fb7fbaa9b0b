//! Random identifiers (daemon, container, exec, network IDs).

/// `n` random bytes as lowercase hex, from the kernel's CSPRNG: one
/// `getrandom(2)` per ID (an exec creates one per request), where opening,
/// reading and closing `/dev/urandom` took three syscalls and an fd.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut buf) {
        // Unreachable on a kernel berthd runs on (getrandom(2) is 3.17;
        // the crate falls back to /dev/urandom besides). IDs must be
        // unique, not secret: rather than fail the request (or hand out
        // an all-zero ID that would overwrite another object's record),
        // derive one from a process-wide counter, the clock and the pid.
        tracing::warn!(error = %e, "no kernel randomness for an ID");
        fill_unique(&mut buf);
    }
    hex::encode(buf)
}

/// Unique bytes without the kernel's CSPRNG: SipHash (std's
/// `DefaultHasher`) of a counter no two calls share, the time and the pid.
fn fill_unique(buf: &mut [u8]) {
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (n, now, std::process::id(), i).hash(&mut h);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// A 64-hex object ID whose 12-character short form is not all digits
/// (Docker avoids those so a short ID never parses as a number).
pub fn new_object_id() -> String {
    loop {
        let id = random_hex(32);
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hex_and_distinct() {
        let a = super::new_object_id();
        let b = super::new_object_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_fallback_is_unique_too() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        super::fill_unique(&mut a);
        super::fill_unique(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
