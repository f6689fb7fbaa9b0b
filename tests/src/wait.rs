//! Waiting for a condition: polls with a deadline, and bounded retries.

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it holds or `limit` passes; whether it held.
pub fn wait_for(limit: Duration, f: impl FnMut() -> bool) -> bool {
    wait_for_polling(Duration::from_millis(20), limit, f)
}

/// Polls `f` every `every` until it holds or `limit` passes; whether it
/// held (for conditions that are costly to check, such as a docker command).
pub fn wait_for_polling(every: Duration, limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

/// Tries `f` up to 50 times, 100 ms apart; whether it held once.
pub fn retry(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..50 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
