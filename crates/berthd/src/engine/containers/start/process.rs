//! Stage 3 of a start: the process — its user, environment (with the
//! variables of legacy links), arguments (behind `docker-init` with
//! `--init`) and working directory, created when missing as dockerd does.

use std::path::PathBuf;

use berth_runtime::ResolvedUser;

use super::super::{Paths, Record};
use crate::engine::users;
use crate::engine::{containers::Containers, EngineError, Result};

pub(in crate::engine::containers) struct Process {
    pub user: ResolvedUser,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub init: Option<PathBuf>,
    pub tty: bool,
    /// `/etc/hosts` lines for the container's links.
    pub link_hosts: String,
}

impl Containers {
    pub(in crate::engine::containers) fn process(
        &self,
        r: &Record,
        p: &Paths,
        hostname: &str,
    ) -> Result<Process> {
        let hc = &r.host_config;
        let (u, home) = users::resolve(
            &p.rw.merged,
            r.config.user.as_deref().unwrap_or(""),
            &hc.group_add.clone().unwrap_or_default(),
        )?;
        let tty = r.config.tty.unwrap_or(false);
        let linked = self.linked(r)?;
        let mut env = super::super::daemon_env(
            hostname,
            tty,
            linked.env,
            &[&r.config.env.clone().unwrap_or_default()],
        );
        let has = |env: &Vec<String>, k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
        if !has(&env, "HOME") {
            env.push(format!("HOME={home}"));
        }
        let mut args = vec![r.path.clone()];
        args.extend(r.args.clone());
        let init = if hc.init == Some(true) {
            self.init_binary()
        } else {
            None
        };
        if init.is_some() {
            let mut a = vec!["/sbin/docker-init".to_string(), "--".to_string()];
            a.extend(args);
            args = a;
        }
        let cwd = r
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        // As dockerd does, a missing working directory is created (root's,
        // 0755), resolved inside the container's root.
        if !crate::engine::fs::components(&cwd).is_empty() {
            crate::engine::fs::Root::open(&p.rw.merged)
                .and_then(|root| root.mkdir_all(&cwd, 0o755))
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOTDIR) | Some(libc::EEXIST) => {
                        EngineError::invalid(format!("Cannot mkdir: {cwd} is not a directory"))
                    }
                    _ => EngineError::internal(format!("creating working directory {cwd}: {e}")),
                })?;
        }
        Ok(Process {
            user: u,
            args,
            env,
            cwd,
            init,
            tty,
            link_hosts: linked.hosts,
        })
    }
}
