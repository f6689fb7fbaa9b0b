//! Random identifiers (daemon, container, exec, network IDs).

use std::io::Read;

/// `n` random bytes as lowercase hex, from the kernel's CSPRNG.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if filled.is_err() {
        // getrandom(2) as a fallback when /dev is unusual.
        // SAFETY: buf is valid for n bytes.
        unsafe { libc::getrandom(buf.as_mut_ptr().cast(), n, 0) };
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
