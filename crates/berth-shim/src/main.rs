//! berth-shim: the per-container process (filled by the containers issue, #4).

fn main() {
    eprintln!("berth-shim: containers are not implemented yet");
    std::process::exit(1);
}
