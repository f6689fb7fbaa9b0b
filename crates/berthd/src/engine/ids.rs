//! Random identifiers (daemon, container, exec, network IDs).

/// `n` random bytes as lowercase hex, from the kernel's CSPRNG: one
/// `getrandom(2)` per ID (an exec creates one per request), where opening,
/// reading and closing `/dev/urandom` took three syscalls and an fd.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut buf) {
        // Unreachable on a kernel berthd runs on (getrandom(2) is 3.17,
        // pidfd_open 5.3; the crate falls back to /dev/urandom besides):
        // fail the one request rather than hand out an all-zero ID that
        // would overwrite another object's record.
        panic!("no kernel randomness for an ID: {e}");
    }
    hex::encode(buf)
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
}
