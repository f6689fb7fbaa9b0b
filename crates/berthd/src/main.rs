// A request must never panic the daemon: errors are values outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_op_in_unsafe_fn)]

use clap::Parser;

use berthd::config::{DaemonConfig, Flags};

fn main() {
    if let Some(dir) = berthd::manpage::requested() {
        if let Err(e) = berthd::manpage::write(&dir) {
            eprintln!("berthd: writing the man page: {e}");
            std::process::exit(1);
        }
        return;
    }
    let flags = Flags::parse();
    let check = flags.check;
    let cfg = match DaemonConfig::resolve(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e}");
            std::process::exit(1);
        }
    };
    if cfg.rootless {
        // Before any thread exists: setns into a user namespace needs a
        // single-threaded process. `--check` joins, never creates.
        let entered = if check {
            berthd::rootless::join_existing(&cfg.exec_root).map(drop)
        } else {
            berthd::rootless::enter(&cfg.exec_root).map(drop)
        };
        if let Err(e) = entered {
            eprintln!("berthd: {e}");
            std::process::exit(1);
        }
    }
    // systemd's sockets and notify socket, taken while single-threaded.
    if let Err(e) = berthd::activation::init(&cfg.hosts) {
        eprintln!("berthd: {e}");
        std::process::exit(1);
    }
    if check {
        // 0: nothing to reconcile; 2: findings (printed); 1: error.
        match berthd::engine::reconcile::check(&cfg, &mut std::io::stdout()) {
            Ok(0) => std::process::exit(0),
            Ok(_) => std::process::exit(2),
            Err(e) => {
                eprintln!("berthd: {e:#}");
                std::process::exit(1);
            }
        }
    }
    berthd::daemon::init_logging(&cfg);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berthd")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: starting runtime: {e}");
            std::process::exit(1);
        }
    };
    let stopped = match rt.block_on(berthd::daemon::run(cfg)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            std::process::exit(1);
        }
    };
    // Detached stream tasks must not hold the process past the grace period.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    stopped.close();
}
