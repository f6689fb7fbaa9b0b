//! The client's terminal: raw mode (restored on drop, so also on errors and
//! panics), its size, and stdin read on a thread of its own.

use std::io::Read;

pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// `(rows, cols)` of the terminal on `fd`.
pub fn size(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize we own.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The terminal size docker sends: stdout's.
pub fn console_size() -> Option<(u16, u16)> {
    size(1)
}

/// A terminal in raw mode until this is dropped.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` in raw mode (docker's `term.MakeRaw`, i.e. cfmakeraw).
    pub fn enable(fd: i32) -> std::io::Result<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits our copy.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Reads stdin on a plain thread: a blocking read of a terminal cannot be
/// cancelled, and on a tokio blocking thread it would hold up shutdown.
/// The channel closes at EOF (or on a read error).
pub fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    });
    rx
}

/// Watches typed input for the detach sequence (the daemon acts on it; we
/// only need to know it happened, to end with 0 instead of waiting).
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// Returns how many bytes of `data` to forward (through the end of the
    /// sequence) and whether the sequence completed.
    pub fn feed(&mut self, data: &[u8]) -> (usize, bool) {
        if self.keys.is_empty() {
            return (data.len(), false);
        }
        for (i, &b) in data.iter().enumerate() {
            if b == self.keys[self.matched] {
                self.matched += 1;
            } else {
                self.matched = usize::from(b == self.keys[0]);
            }
            if self.matched == self.keys.len() {
                self.matched = 0;
                return (i + 1, true);
            }
        }
        (data.len(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        let mut e = Escape::new(vec![16, 17]);
        assert_eq!(e.feed(b"ab\x10"), (3, false));
        assert_eq!(e.feed(b"\x11rest"), (1, true));
        assert_eq!(e.feed(b"\x10\x10\x11"), (3, true));
        assert_eq!(e.feed(b"x\x10y\x11"), (4, false));
    }
}
