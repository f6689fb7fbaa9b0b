//! Giving back what only the start-up needed: the heap's free tail and
//! the pages of berthd's own code and read-only data that the start-up
//! touched (clap, the store's open, reconciliation, …). An idle daemon
//! touches few of them again, and a page touched again is mapped back from
//! the page cache on its next use (a minor fault; nothing is read again).

/// Run once, after the start-up, on a blocking thread.
pub fn after_start_up() {
    trim_heap();
    match drop_clean_exe_pages() {
        Ok(kib) => tracing::debug!(kib, "dropped the start-up's code pages"),
        Err(e) => tracing::debug!("dropping code pages: {e}"),
    }
}

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How long without a request ends a burst.
const QUIET: std::time::Duration = std::time::Duration::from_millis(500);

/// Requests counted since the start; see [`after_bursts`].
static ACTIVITY: AtomicU64 = AtomicU64::new(0);
/// Whether `after_bursts` waits for a burst to begin (and must be woken).
static IDLE: AtomicBool = AtomicBool::new(false);
static WAKE: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();

fn wake() -> &'static tokio::sync::Notify {
    WAKE.get_or_init(tokio::sync::Notify::new)
}

/// Counts one unit of work (an API request): the heap may have grown.
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
    if IDLE.swap(false, Ordering::AcqRel) {
        wake().notify_one();
    }
}

/// Gives back the heap's free pages once a burst of work is over: the
/// first `QUIET` without a request after some. A burst of starts leaves
/// the freed memory of its requests between the records that stay (glibc
/// gives back only a heap's free top by itself, and only in the main
/// arena); at 1 000 containers this is ~6 MiB of RSS. Asleep while the
/// daemon is idle: the first request of a burst wakes it.
pub async fn after_bursts() {
    loop {
        IDLE.store(true, Ordering::Release);
        // A notification sent before this wait is kept, not lost.
        wake().notified().await;
        let mut seen = ACTIVITY.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(QUIET).await;
            let now = ACTIVITY.load(Ordering::Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
        let _ = tokio::task::spawn_blocking(trim_heap).await;
    }
}

/// Returns glibc's free heap memory to the system: the free top of each
/// arena, and the whole free pages inside them.
#[cfg(target_env = "gnu")]
fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks;
    // it takes no pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn trim_heap() {}

/// One mapping of the executable as `/proc/self/smaps` shows it.
#[derive(Debug, PartialEq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Private and neither writable nor holding copied-on-write pages.
    clean: bool,
}

/// Unmaps the resident pages of the executable's read-only, private
/// mappings that hold no anonymous (copied-on-write) page: the code and
/// the read-only data. RELRO (written by the loader, then made read-only)
/// holds anonymous pages and is left alone. Returns the KiB unmapped.
fn drop_clean_exe_pages() -> std::io::Result<u64> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut kib = 0;
    for (m, rss) in exe_mappings(&smaps, &exe.to_string_lossy()) {
        if !m.clean || rss == 0 {
            continue;
        }
        // SAFETY: [start, end) is one whole mapping of our own executable,
        // private, never writable and without an anonymous page (checked
        // just above from smaps; nothing makes such a mapping writable
        // after the loader's RELRO step). Dropping its pages loses nothing:
        // the next access maps the same bytes back from the file. No Rust
        // reference is invalidated (the contents do not change).
        let r = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if r == 0 {
            kib += rss;
        }
    }
    Ok(kib)
}

/// The mappings of `exe` in an smaps text, each with its resident KiB.
fn exe_mappings(smaps: &str, exe: &str) -> Vec<(Mapping, u64)> {
    let mut out: Vec<(Mapping, u64)> = Vec::new();
    // The mapping being read (if it is one of the executable's) and its Rss.
    let mut cur: Option<(Mapping, u64)> = None;
    for line in smaps.lines() {
        if let Some((range, rest)) = header(line) {
            out.extend(cur.take());
            let mut f = rest.split_whitespace();
            let perms = f.next().unwrap_or("");
            let path = f
                .nth(3)
                .map(|_| rest.splitn(5, ' ').nth(4).unwrap_or("").trim());
            if path == Some(exe) {
                cur = Some((
                    Mapping {
                        start: range.0,
                        end: range.1,
                        clean: perms.len() == 4 && !perms.contains('w') && perms.ends_with('p'),
                    },
                    0,
                ));
            }
            continue;
        }
        let Some((m, rss)) = cur.as_mut() else {
            continue;
        };
        let kib = |l: &str| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        };
        if line.starts_with("Rss:") {
            *rss = kib(line).unwrap_or(0);
        } else if line.starts_with("Anonymous:") || line.starts_with("Private_Dirty:") {
            // Unknown means not clean.
            if kib(line) != Some(0) {
                m.clean = false;
            }
        }
    }
    out.extend(cur);
    out
}

/// A mapping's header line: `start-end perms offset dev inode [path]`.
fn header(line: &str) -> Option<((usize, usize), &str)> {
    let (range, rest) = line.split_once(' ')?;
    let (a, b) = range.split_once('-')?;
    let a = usize::from_str_radix(a, 16).ok()?;
    let b = usize::from_str_radix(b, 16).ok()?;
    Some(((a, b), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0600000 r--p 00000000 08:01 123 /usr/bin/berthd
Rss:                2912 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0600000-55d0a1600000 r-xp 00600000 08:01 123 /usr/bin/berthd
Rss:               11292 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a1600000-55d0a1700000 r--p 01600000 08:01 123 /usr/bin/berthd
Rss:                 620 kB
Private_Dirty:       620 kB
Anonymous:           620 kB
55d0a1700000-55d0a1705000 rw-p 01700000 08:01 123 /usr/bin/berthd
Rss:                  20 kB
Private_Dirty:        20 kB
Anonymous:            20 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 9 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1072 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  80 kB
Anonymous:            80 kB
";

    #[test]
    fn only_the_executables_clean_read_only_mappings_are_dropped() {
        let got = exe_mappings(SMAPS, "/usr/bin/berthd");
        let clean: Vec<(usize, u64)> = got
            .iter()
            .filter(|(m, _)| m.clean)
            .map(|(m, rss)| (m.start, *rss))
            .collect();
        assert_eq!(got.len(), 4);
        assert_eq!(clean, vec![(0x55d0a0000000, 2912), (0x55d0a0600000, 11292)]);
    }

    #[test]
    fn a_path_with_spaces_matches_whole() {
        let s = "1000-2000 r-xp 00000000 08:01 1 /opt/my dir/berthd\nRss: 4 kB\nAnonymous: 0 kB\nPrivate_Dirty: 0 kB\n";
        assert_eq!(exe_mappings(s, "/opt/my dir/berthd").len(), 1);
        assert!(exe_mappings(s, "/opt/my").is_empty());
    }

    #[test]
    fn dropping_keeps_the_code_running() {
        // Drops this test binary's own code pages, then runs more code.
        drop_clean_exe_pages().unwrap();
        assert_eq!(exe_mappings("", "x"), vec![]);
    }
}
