//! Container configuration → OCI runtime spec with Docker's defaults:
//! capabilities, seccomp, masked and read-only paths, default mounts and
//! devices, namespaces, cgroups and resource limits.
//!
//! The daemon resolves everything that needs the image or the host (the
//! final argv, env, user IDs, file paths, extra mounts); this crate only
//! turns that into a `Spec`. The only host facts it reads (cgroup version,
//! kernel, arch, capabilities held, `/dev`, CPU thermal dirs, device numbers)
//! are gathered in one place so tests can substitute a fake host.

// A request must never panic the daemon: errors are values outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_op_in_unsafe_fn)]

mod caps;
mod devices;
mod host;
mod mounts;
mod resources;
mod seccomp;
mod spec;

use std::path::PathBuf;

/// The `PATH` a process gets when its image sets none (moby's
/// `DefaultPathEnv`), and every build stage's unless it sets its own.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use bollard_stubs::models::{ContainerConfig, HostConfig};
pub use caps::first_unknown as unknown_capability;
pub use oci_spec;
pub use oci_spec::runtime::{Mount, Spec};

/// The user the process runs as, already resolved against the image's
/// `/etc/passwd` and `/etc/group` by the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's groups from `/etc/group` plus `--group-add`.
    pub additional_gids: Vec<u32>,
}

/// Files berthd writes per container and bind-mounts into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFiles {
    pub hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
}

/// How the container gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// Join a namespace berthd created (bind-mounted at this path).
    Path(PathBuf),
    /// Share the host's (`--network host`).
    Host,
}

/// A namespace that is private, the host's, or another container's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NsMode {
    #[default]
    Private,
    Host,
    /// `/proc/<pid>/ns/<type>` of the other container's init, resolved by the daemon.
    Path(PathBuf),
}

/// Which seccomp profile applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompChoice {
    /// Docker's default profile (adjusted for the container's capabilities).
    #[default]
    Default,
    /// `--security-opt seccomp=unconfined`.
    Unconfined,
    /// `--security-opt seccomp=FILE`: the profile JSON in Docker's format.
    Custom(String),
}

/// Everything needed to build the spec.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    /// Container ID (64 hex).
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub host_config: &'a HostConfig,
    /// The merged overlay mount (the container's root).
    pub rootfs: PathBuf,
    /// Final argv (entrypoint + cmd, with the init binary prepended for `--init`).
    pub args: Vec<String>,
    /// Final environment (image env, then container env; PATH defaulted; HOSTNAME set).
    pub env: Vec<String>,
    /// Working directory inside the container ("/" when unset).
    pub cwd: String,
    pub user: ResolvedUser,
    pub hostname: String,
    pub domainname: String,
    pub files: ContainerFiles,
    pub netns: NetNs,
    pub ipc: NsMode,
    pub pid: NsMode,
    pub uts_host: bool,
    /// e.g. `/berth/<id>`; set explicitly (no systemd).
    pub cgroups_path: String,
    /// Whether the container gets cgroups: false in rootless mode without
    /// delegated cgroup v2 controllers, where the spec has no
    /// `linux.resources` and no `cgroupsPath` (moby's `toRootless`), and
    /// the container stays in the shim's cgroup.
    pub cgroups: bool,
    /// Volumes, binds and tmpfs mounts from the daemon, in order, applied after the defaults.
    pub extra_mounts: Vec<Mount>,
    /// Host path of berth's init, bind-mounted read-only at `/sbin/docker-init` when `--init`.
    pub init_binary: Option<PathBuf>,
    pub seccomp: SeccompChoice,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Bad user input (unknown capability, bad ulimit, malformed seccomp file...).
    #[error("{0}")]
    Invalid(String),
    #[error("building the runtime spec: {0}")]
    Build(String),
}

/// Builds the OCI runtime spec for a container, with Docker 28's defaults
/// for this host (cgroup version, architecture, kernel, capabilities held,
/// `/dev` and CPU thermal entries).
pub fn build_spec(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    spec::build(input, host())
}

/// The host's facts, read once: none of them changes under a running
/// daemon, and reading them (`/proc`, `/sys`) costs every start.
fn host() -> &'static host::HostInfo {
    static HOST: std::sync::OnceLock<host::HostInfo> = std::sync::OnceLock::new();
    HOST.get_or_init(host::HostInfo::detect)
}

/// The masked and read-only paths a container gets unless it is privileged
/// or asks otherwise (what dockerd reports in `HostConfig`).
pub fn default_path_lists() -> (Vec<String>, Vec<String>) {
    spec::default_path_lists(host())
}

/// Docker's default capability set (`CAP_`-prefixed), in moby's order.
pub fn default_capabilities() -> Vec<String> {
    caps::default_capabilities()
}

/// Every capability a container can be given on this host (what
/// `--cap-add ALL` and `--privileged` grant): those berth knows that the
/// kernel supports and this process holds, in kernel bit order.
pub fn all_capabilities() -> Vec<String> {
    caps::available_capabilities(host())
}
