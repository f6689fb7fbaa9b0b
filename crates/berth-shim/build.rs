//! The shim is linked as a position-dependent executable. One shim runs per
//! container, all from one shared memfd copy; in a PIE every shim would
//! relocate its ~400 KiB RELRO segment into private dirty pages, while a
//! non-PIE image keeps those pages clean and shared. (containerd's Go shims
//! are non-PIE for the same reason.) Its text is still shared and sealed.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
