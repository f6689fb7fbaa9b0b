//! Drives an interactive command (`docker run -it ...`) in a real pseudo
//! terminal: the command gets the pty as its controlling terminal, so the
//! docker CLI sees a TTY, goes raw, and gets SIGWINCH on resize.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pty {
    master: std::fs::File,
    pub child: Child,
    pub output: Vec<u8>,
}

fn set_size(fd: i32, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ on a pty fd.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

impl Pty {
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Self {
        let pair = nix::pty::openpty(None, None).expect("openpty");
        set_size(pair.master.as_raw_fd(), rows, cols);
        let slave: OwnedFd = pair.slave;
        let sfd = slave.as_raw_fd();
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid + TIOCSCTTY between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                let _ = sfd;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn in pty");
        drop(slave);
        let master = std::fs::File::from(pair.master);
        // SAFETY: non-blocking reads on our master.
        unsafe {
            let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        Self {
            master,
            child,
            output: Vec::new(),
        }
    }

    pub fn write(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).expect("pty write");
    }

    /// Changes the terminal size; the kernel sends SIGWINCH to the command.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        set_size(self.master.as_raw_fd(), rows, cols);
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.master.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.output.extend_from_slice(&buf[..n]),
                Err(_) => return,
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Waits until the output contains `needle` (bounded).
    pub fn expect(&mut self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            self.pump();
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits for the command to exit (bounded) and returns its code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            self.pump();
            if let Ok(Some(st)) = self.child.try_wait() {
                self.pump();
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

/// The `run -it busybox sh` scenario of the docs, for any client command:
/// a prompt in a 33x111 terminal, `stty size` following a resize to 20x70,
/// `echo $((6*7))` printing 42, and `exit 5` becoming the exit status.
pub fn check_run_it_session(cmd: std::process::Command) {
    use std::time::Duration;
    let mut p = Pty::spawn(cmd, 33, 111);
    assert!(
        p.expect("/ #", Duration::from_secs(20)),
        "no prompt: {}",
        p.text()
    );
    p.write("stty size\r");
    assert!(
        p.expect("33 111", Duration::from_secs(10)),
        "initial size: {}",
        p.text()
    );
    p.resize(20, 70);
    std::thread::sleep(Duration::from_millis(300));
    p.write("stty size\r");
    assert!(
        p.expect("20 70", Duration::from_secs(10)),
        "resized: {}",
        p.text()
    );
    p.write("echo $((6*7)); exit 5\r");
    assert!(p.expect("42", Duration::from_secs(10)), "{}", p.text());
    assert_eq!(p.wait(Duration::from_secs(20)), Some(5), "{}", p.text());
}
