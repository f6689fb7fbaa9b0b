use std::fs;
use std::path::Path;

use nix::unistd::Pid;

use crate::common::{self, CGROUP_PROCS, ControllerOpt, WrapIoResult, WrappedIoError};

pub(super) trait Controller {
    type Error: From<WrappedIoError>;
    type Resource;

    /// Adds a new task specified by its pid to the cgroup
    fn add_task(pid: Pid, cgroup_path: &Path) -> Result<(), Self::Error> {
        fs::create_dir_all(cgroup_path).wrap_create_dir(cgroup_path)?;
        join(pid, cgroup_path)?;
        Ok(())
    }

    /// Applies resource restrictions to the cgroup
    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error>;

    /// Checks if the controller needs to handle this request
    fn needs_to_handle<'a>(controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource>;
}

/// berth: puts `pid` into the cgroup at `cgroup_path`.
///
/// Writing a PID to `cgroup.procs` takes the kernel's global
/// `cgroup_threadgroup_rwsem` for writing, whose first writer after a
/// quiet spell waits for an RCU grace period (several milliseconds, on
/// every container start). A thread that moves itself by writing `0` to
/// `tasks` takes no such lock (`cgroup_procs_write_start`: neither a PID
/// nor a thread group); for a process with a single thread, which is what
/// libcontainer's intermediate process is when it joins its cgroups, that
/// moves the whole process. Any other case writes `cgroup.procs`, as
/// upstream does.
pub(super) fn join(pid: Pid, cgroup_path: &Path) -> Result<(), WrappedIoError> {
    if pid == nix::unistd::getpid() && single_threaded() {
        return common::write_cgroup_file(cgroup_path.join(CGROUP_TASKS), 0);
    }
    common::write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)
}

const CGROUP_TASKS: &str = "tasks";

/// Whether the calling process has exactly one thread: procfs gives its
/// `task` directory 2 links plus one per thread (`proc_task_getattr`),
/// which one `statx` reads; `/proc/self/status` is a page the kernel
/// formats for each read (berth: one per controller joined).
fn single_threaded() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/task").is_ok_and(|m| m.nlink() == 3)
}
