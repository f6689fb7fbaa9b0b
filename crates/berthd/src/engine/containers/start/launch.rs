//! Stage 5 of a start: the shim's configuration (logging, terminal,
//! cgroup, seccomp BPF) and the shim itself, launched to load the
//! container (and, prepared ahead, create it) and wait for the word.

use berth_api::shim::ShimConfig;

use super::super::{shim, Paths, Record};
use super::etc_files::write_file;
use super::spec::Written;
use crate::engine::cgroups;
use crate::engine::{containers::Containers, Result};

impl Containers {
    pub(in crate::engine::containers) fn launch_shim(
        &self,
        r: &Record,
        p: &Paths,
        tty: bool,
        spec: Written,
        create_early: bool,
    ) -> Result<shim::Launched> {
        let hc = &r.host_config;
        let Written {
            bpf_file,
            default_profile,
            lent_caps,
        } = spec;
        let have_bpf = bpf_file.is_some();
        let log = self.start_logging(r, &p.log)?;
        let exit_file = p.bundle.join("exit.json");
        let _ = std::fs::remove_file(&exit_file);
        if let Some(sdir) = p.socket.parent() {
            std::fs::create_dir_all(sdir)?;
        }
        let cfg = ShimConfig {
            id: r.id.clone(),
            bundle: p.bundle.display().to_string(),
            runtime_root: self.config.exec_root.join("runtime").display().to_string(),
            socket: p.socket.display().to_string(),
            exit_file: exit_file.display().to_string(),
            log_path: log.path,
            log_max_size: log.max_size,
            log_max_file: log.max_file,
            log_compress: log.compress,
            log_format: log.format,
            log_fifo: log.fifo,
            log_attrs: log.attrs,
            tty,
            open_stdin: r.config.open_stdin.unwrap_or(false),
            stdin_once: r.config.stdin_once.unwrap_or(false),
            console_size: hc
                .console_size
                .as_ref()
                .filter(|v| v.len() == 2 && v[0] > 0 && v[1] > 0)
                .map(|v| (v[0] as u16, v[1] as u16)),
            cgroups_path: cgroups::path(&r.id),
            init_bpf: have_bpf && default_profile,
            seccomp_bpf: bpf_file
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            lent_caps,
            trash_dir: crate::engine::trash::dir(&self.config.exec_root)
                .display()
                .to_string(),
            create_early,
        };
        write_file(&p.bundle.join("shim.json"), &serde_json::to_string(&cfg)?)?;
        let launched = shim::launch(&self.shim_bin, &p.bundle, &p.bundle.join("shim.log"))?;
        Ok(launched)
    }
}
