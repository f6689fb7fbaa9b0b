//! Docker's default seccomp profile (moby v28 `profiles/seccomp`), as berth
//! tables: one entry per rule, with the conditions that decide whether the
//! rule applies to a given container (capabilities, architecture, kernel).

use oci_spec::runtime::Arch;

use super::{ActionDef, ArgDef, OpDef, RuleDef};

pub(crate) const DEFAULT_ERRNO: u32 = EPERM;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const AF_VSOCK: u64 = 40;

// personality(2) domains a container may switch to.
const PER_LINUX: u64 = 0x0000;
const PER_LINUX32: u64 = 0x0008;
const UNAME26: u64 = 0x0002_0000;
const PER_LINUX32_UNAME26: u64 = PER_LINUX32 | UNAME26;
const PERSONALITY_QUERY: u64 = 0xffff_ffff;

/// clone(2) flags that create namespaces; without CAP_SYS_ADMIN none may be set.
const CLONE_NAMESPACE_FLAGS: u64 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

/// Allowed for every container, whatever its capabilities.
#[rustfmt::skip]
const BASELINE: &[&str] = &[
    "_llseek", "_newselect", "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk",
    "cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
    "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr",
    "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64",
    "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
    "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_robust_list",
    "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage", "getsid",
    "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "ioctl", "ioprio_get", "ioprio_set", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
    "linkat", "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat",
    "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
    "removexattrat", "rename", "renameat", "renameat2", "restart_syscall", "riscv_hwprobe",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
    "sendto", "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid",
    "setuid32", "setxattr", "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
    "splice", "stat", "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat",
    "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat", "utimensat_time64", "utimes",
    "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
];

/// Architecture → the extra ABIs a filter for it must also cover.
pub(crate) const ARCH_FAMILIES: &[(Arch, &[Arch])] = &[
    (
        Arch::ScmpArchX86_64,
        &[Arch::ScmpArchX86, Arch::ScmpArchX32],
    ),
    (Arch::ScmpArchAarch64, &[Arch::ScmpArchArm]),
    (
        Arch::ScmpArchMips64,
        &[Arch::ScmpArchMips, Arch::ScmpArchMips64n32],
    ),
    (
        Arch::ScmpArchMips64n32,
        &[Arch::ScmpArchMips, Arch::ScmpArchMips64],
    ),
    (
        Arch::ScmpArchMipsel64,
        &[Arch::ScmpArchMipsel, Arch::ScmpArchMipsel64n32],
    ),
    (
        Arch::ScmpArchMipsel64n32,
        &[Arch::ScmpArchMipsel, Arch::ScmpArchMipsel64],
    ),
    (Arch::ScmpArchS390x, &[Arch::ScmpArchS390]),
    (Arch::ScmpArchRiscv64, &[]),
];

const fn allow(names: &'static [&'static str]) -> RuleDef {
    RuleDef::new(names, ActionDef::Allow)
}

const fn arg(index: u32, op: OpDef, value: u64) -> ArgDef {
    ArgDef { index, op, value }
}

const S390: &[&str] = &["s390", "s390x"];

pub(crate) const RULES: &[RuleDef] = &[
    allow(BASELINE),
    // Cross-process memory access became safe to allow with the 4.8 ptrace fixes.
    allow(&["process_vm_readv", "process_vm_writev", "ptrace"]).min_kernel(4, 8),
    // Any socket family except vsock, which would reach the host's VMs.
    allow(&["socket"]).args(&[arg(0, OpDef::Ne, AF_VSOCK)]),
    allow(&["personality"]).args(&[arg(0, OpDef::Eq, PER_LINUX)]),
    allow(&["personality"]).args(&[arg(0, OpDef::Eq, PER_LINUX32)]),
    allow(&["personality"]).args(&[arg(0, OpDef::Eq, UNAME26)]),
    allow(&["personality"]).args(&[arg(0, OpDef::Eq, PER_LINUX32_UNAME26)]),
    allow(&["personality"]).args(&[arg(0, OpDef::Eq, PERSONALITY_QUERY)]),
    // Architecture-specific syscalls.
    allow(&["sync_file_range2", "swapcontext"]).on_arches(&["ppc64le"]),
    allow(&[
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ])
    .on_arches(&["arm", "arm64"]),
    allow(&["arch_prctl"]).on_arches(&["amd64", "x32"]),
    allow(&["modify_ldt"]).on_arches(&["amd64", "x32", "x86"]),
    allow(&[
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
        "s390_runtime_instr",
    ])
    .on_arches(S390),
    allow(&["riscv_flush_icache"]).on_arches(&["riscv64"]),
    // Capability-gated syscalls: allowed only when the container holds the capability.
    allow(&["open_by_handle_at"]).with_caps(&["CAP_DAC_READ_SEARCH"]),
    allow(&[
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "lsm_get_self_attr",
        "lsm_list_modules",
        "lsm_set_self_attr",
        "mount",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
    ])
    .with_caps(&["CAP_SYS_ADMIN"]),
    // Without CAP_SYS_ADMIN, clone may not create namespaces (flags are arg 0,
    // arg 1 on s390)...
    allow(&["clone"])
        .args(&[arg(0, OpDef::MaskedEq, CLONE_NAMESPACE_FLAGS)])
        .without_caps(&["CAP_SYS_ADMIN"])
        .not_on_arches(S390),
    allow(&["clone"])
        .args(&[arg(1, OpDef::MaskedEq, CLONE_NAMESPACE_FLAGS)])
        .on_arches(S390)
        .without_caps(&["CAP_SYS_ADMIN"]),
    // ...and clone3, whose flags seccomp cannot inspect, reports ENOSYS so
    // libcs fall back to clone.
    RuleDef::new(&["clone3"], ActionDef::Errno(ENOSYS)).without_caps(&["CAP_SYS_ADMIN"]),
    allow(&["reboot"]).with_caps(&["CAP_SYS_BOOT"]),
    allow(&["chroot"]).with_caps(&["CAP_SYS_CHROOT"]),
    allow(&["delete_module", "init_module", "finit_module"]).with_caps(&["CAP_SYS_MODULE"]),
    allow(&["acct"]).with_caps(&["CAP_SYS_PACCT"]),
    allow(&[
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
    ])
    .with_caps(&["CAP_SYS_PTRACE"]),
    allow(&["iopl", "ioperm"]).with_caps(&["CAP_SYS_RAWIO"]),
    allow(&["settimeofday", "stime", "clock_settime", "clock_settime64"])
        .with_caps(&["CAP_SYS_TIME"]),
    allow(&["vhangup"]).with_caps(&["CAP_SYS_TTY_CONFIG"]),
    allow(&[
        "get_mempolicy",
        "mbind",
        "set_mempolicy",
        "set_mempolicy_home_node",
    ])
    .with_caps(&["CAP_SYS_NICE"]),
    allow(&["syslog"]).with_caps(&["CAP_SYSLOG"]),
    allow(&["bpf"]).with_caps(&["CAP_BPF"]),
    allow(&["perf_event_open"]).with_caps(&["CAP_PERFMON"]),
];
