use super::*;
use crate::caps;

fn resolve_default(caps: &[String], host: &HostInfo) -> LinuxSeccomp {
    resolve(&default_profile().unwrap(), caps, host)
        .unwrap()
        .unwrap()
}

fn with_caps(extra: &[&str]) -> Vec<String> {
    let mut c = caps::default_capabilities();
    c.extend(extra.iter().map(|s| s.to_string()));
    c
}

fn rules_for<'a>(sc: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
    sc.syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == name))
        .collect()
}

/// Allowed whatever the arguments.
fn allowed(sc: &LinuxSeccomp, name: &str) -> bool {
    rules_for(sc, name)
        .iter()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
}

/// No rule at all: the default action (EPERM) applies.
fn denied(sc: &LinuxSeccomp, name: &str) -> bool {
    rules_for(sc, name).is_empty()
}

#[test]
fn default_action_and_arches() {
    let sc = resolve_default(&caps::default_capabilities(), &HostInfo::fake());
    assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(sc.default_errno_ret(), Some(1));
    assert_eq!(
        sc.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
    );
    let arm = HostInfo {
        arch: "arm64",
        ..HostInfo::fake()
    };
    let sc = resolve_default(&caps::default_capabilities(), &arm);
    assert_eq!(
        sc.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
    );
    assert!(allowed(&sc, "set_tls"));
    assert!(denied(&sc, "arch_prctl"));
}

#[test]
fn busybox_shell_syscalls_are_allowed() {
    let sc = resolve_default(&caps::default_capabilities(), &HostInfo::fake());
    for name in [
        "read",
        "write",
        "open",
        "openat",
        "close",
        "fstat",
        "newfstatat",
        "statx",
        "lseek",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "getpid",
        "getppid",
        "fork",
        "vfork",
        "execve",
        "wait4",
        "exit",
        "exit_group",
        "dup2",
        "dup3",
        "pipe2",
        "fcntl",
        "getcwd",
        "chdir",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "uname",
        "arch_prctl",
        "set_tid_address",
        "kill",
        "getdents64",
        "readlink",
        "access",
        "faccessat2",
        "setpgid",
        "getpgrp",
        "clock_gettime",
        "nanosleep",
        "poll",
        "pselect6",
        "sigaltstack",
        "prlimit64",
        "chown",
        "chroot",
        "setuid",
        "capset",
    ] {
        assert!(allowed(&sc, name), "{name} should be allowed");
    }
    // fork via clone works, as long as no namespace flag is set.
    let clone = rules_for(&sc, "clone");
    assert_eq!(clone.len(), 1);
    let arg = &clone[0].args().as_ref().unwrap()[0];
    assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(
        (arg.index(), arg.value(), arg.value_two()),
        (0, 0x7E02_0000, None)
    );
}

#[test]
fn dangerous_syscalls_are_denied_by_default() {
    let sc = resolve_default(&caps::default_capabilities(), &HostInfo::fake());
    for name in [
        "mount",
        "umount2",
        "reboot",
        "kexec_load",
        "bpf",
        "unshare",
        "setns",
        "init_module",
        "perf_event_open",
        "open_by_handle_at",
        "syslog",
        "settimeofday",
        "iopl",
        "acct",
        "add_key",
        "keyctl",
        "swapon",
        "pivot_root",
        "userfaultfd",
    ] {
        assert!(denied(&sc, name), "{name} should be denied");
    }
    // clone3 answers ENOSYS so libcs fall back to clone.
    let c3 = rules_for(&sc, "clone3");
    assert_eq!(c3.len(), 1);
    assert_eq!(c3[0].action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(c3[0].errno_ret(), Some(38));
    // socket: everything but AF_VSOCK.
    let sock = rules_for(&sc, "socket");
    assert_eq!(
        sock[0].args().as_ref().unwrap()[0].op(),
        LinuxSeccompOperator::ScmpCmpNe
    );
    assert_eq!(sock[0].args().as_ref().unwrap()[0].value(), 40);
    assert_eq!(rules_for(&sc, "personality").len(), 5);
}

#[test]
fn capabilities_unlock_rules() {
    let sc = resolve_default(&with_caps(&["CAP_SYS_ADMIN"]), &HostInfo::fake());
    for name in [
        "mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "syslog",
    ] {
        assert!(allowed(&sc, name), "{name} with CAP_SYS_ADMIN");
    }
    assert!(rules_for(&sc, "clone3")
        .iter()
        .all(|r| r.errno_ret().is_none()));
    assert!(denied(&sc, "reboot"));

    let sc = resolve_default(
        &with_caps(&["CAP_SYS_BOOT", "CAP_BPF", "CAP_SYS_TIME"]),
        &HostInfo::fake(),
    );
    assert!(allowed(&sc, "reboot"));
    assert!(allowed(&sc, "bpf"));
    assert!(allowed(&sc, "clock_settime"));
    assert!(denied(&sc, "mount"));

    // Dropping SYS_CHROOT drops chroot from the baseline's companion rule.
    let no_chroot: Vec<String> = caps::default_capabilities()
        .into_iter()
        .filter(|c| c != "CAP_SYS_CHROOT")
        .collect();
    assert!(denied(
        &resolve_default(&no_chroot, &HostInfo::fake()),
        "chroot"
    ));
}

#[test]
fn min_kernel_is_honoured() {
    let old = HostInfo {
        kernel: Some((4, 4)),
        ..HostInfo::fake()
    };
    assert!(denied(
        &resolve_default(&caps::default_capabilities(), &old),
        "ptrace"
    ));
    assert!(allowed(
        &resolve_default(&caps::default_capabilities(), &HostInfo::fake()),
        "ptrace"
    ));
    let unknown = HostInfo {
        kernel: None,
        ..HostInfo::fake()
    };
    assert!(resolve(&default_profile().unwrap(), &[], &unknown).is_err());
}

const CUSTOM: &str = include_str!("../../testdata/custom-seccomp.json");

#[test]
fn custom_docker_profile() {
    let p = parse_docker_profile(CUSTOM).unwrap();
    assert_eq!(p.rules.len(), 9);
    assert_eq!(p.rules[1].names, vec!["getpid".to_string()]);

    let sc = resolve(&p, &caps::default_capabilities(), &HostInfo::fake())
        .unwrap()
        .unwrap();
    assert_eq!(sc.default_errno_ret(), Some(1));
    assert_eq!(
        sc.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
    );
    assert!(allowed(&sc, "execve"));
    assert!(allowed(&sc, "getpid"));
    assert!(allowed(&sc, "arch_prctl"));
    assert!(allowed(&sc, "futex_waitv"));
    assert_eq!(rules_for(&sc, "mkdir")[0].errno_ret(), Some(13));
    assert_eq!(
        rules_for(&sc, "socket")[0].args().as_ref().unwrap()[0].value(),
        1
    );
    assert!(denied(&sc, "mount"));
    // CAP_FOWNER is in the default set, so the chmod LOG rule is excluded.
    assert!(denied(&sc, "chmod"));
    // Kernel 6.8 ≥ 5.0: the uselib rule is excluded.
    assert!(denied(&sc, "uselib"));

    let old = HostInfo {
        arch: "arm64",
        kernel: Some((4, 19)),
        ..HostInfo::fake()
    };
    let sc = resolve(&p, &["CAP_SYS_ADMIN".to_string()], &old)
        .unwrap()
        .unwrap();
    assert_eq!(
        sc.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64][..])
    );
    assert!(allowed(&sc, "mount"));
    assert!(denied(&sc, "arch_prctl"));
    assert!(denied(&sc, "futex_waitv"));
    assert_eq!(
        rules_for(&sc, "chmod")[0].action(),
        LinuxSeccompAction::ScmpActLog
    );
    assert_eq!(
        rules_for(&sc, "uselib")[0].action(),
        LinuxSeccompAction::ScmpActKillProcess
    );
}

#[test]
fn custom_profile_errors() {
    let err = parse_docker_profile("{ not json").unwrap_err().to_string();
    assert!(
        err.starts_with("Decoding seccomp profile failed: "),
        "{err}"
    );
    let err = parse_docker_profile(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("Decoding seccomp profile failed: "));
    let err = parse_docker_profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid kernel version"), "{err}");
    let err = parse_docker_profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("'name' and 'names'"));
    let p = parse_docker_profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":[]}]}"#,
    )
    .unwrap();
    assert!(resolve(&p, &[], &HostInfo::fake()).is_err());
}

#[test]
fn empty_profile_disables_seccomp() {
    let p = parse_docker_profile("{}").unwrap();
    assert!(resolve(&p, &[], &HostInfo::fake()).unwrap().is_none());
    // `architectures` passes through when there is no archMap.
    let p = parse_docker_profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"flags":["SECCOMP_FILTER_FLAG_LOG"]}"#,
    )
    .unwrap();
    let sc = resolve(&p, &[], &HostInfo::fake()).unwrap().unwrap();
    assert_eq!(
        sc.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64][..])
    );
    assert_eq!(sc.flags().as_ref().unwrap().len(), 1);
    assert!(sc.syscalls().is_none());
}

/// Names within a rule are a set; compare them sorted.
fn normalized(sc: LinuxSeccomp) -> LinuxSeccomp {
    let mut sc = sc;
    let rules = sc.syscalls().clone().map(|rules| {
        rules
            .into_iter()
            .map(|mut r| {
                let mut names = r.names().clone();
                names.sort();
                r.set_names(names);
                r
            })
            .collect::<Vec<_>>()
    });
    sc.set_syscalls(rules);
    sc
}

/// Proves berth's tables encode exactly Docker's default profile. Run with
/// `BERTH_SECCOMP_REFERENCE=/path/to/docker-default-seccomp.json cargo test
/// -p berth-runtime -- --ignored`.
#[test]
#[ignore = "needs BERTH_SECCOMP_REFERENCE pointing at Docker's default.json"]
fn tables_match_docker_reference() {
    let Ok(path) = std::env::var("BERTH_SECCOMP_REFERENCE") else {
        panic!("set BERTH_SECCOMP_REFERENCE to Docker's default seccomp profile");
    };
    let json = std::fs::read_to_string(&path).unwrap();
    let reference = parse_docker_profile(&json).unwrap();
    let ours = default_profile().unwrap();

    // Rule by rule, same conditions.
    assert_eq!(ours.default_action, reference.default_action);
    assert_eq!(ours.default_errno_ret, reference.default_errno_ret);
    assert_eq!(ours.architectures, reference.architectures);
    assert_eq!(ours.arch_map, reference.arch_map);
    assert_eq!(ours.rules.len(), reference.rules.len());
    for (i, (a, b)) in ours.rules.iter().zip(&reference.rules).enumerate() {
        let (mut an, mut bn) = (a.names.clone(), b.names.clone());
        an.sort();
        bn.sort();
        assert_eq!(an, bn, "rule {i} names");
        assert_eq!(an.len(), a.names.len(), "rule {i} has no duplicates");
        assert_eq!(
            (a.action, a.errno_ret, &a.args, &a.includes, &a.excludes),
            (b.action, b.errno_ret, &b.args, &b.includes, &b.excludes),
            "rule {i}"
        );
    }

    // And the same resolved output for the cases that matter.
    let all = caps::known_capabilities();
    let default = caps::default_capabilities();
    for arch in ["amd64", "arm64", "s390x", "riscv64", "ppc64le"] {
        for kernel in [(6, 8), (4, 4)] {
            for set in [&default, &all, &Vec::new()] {
                let host = HostInfo {
                    arch,
                    kernel: Some(kernel),
                    ..HostInfo::fake()
                };
                let a = resolve(&ours, set, &host).unwrap().unwrap();
                let b = resolve(&reference, set, &host).unwrap().unwrap();
                assert_eq!(
                    normalized(a),
                    normalized(b),
                    "{arch} {kernel:?} {}",
                    set.len()
                );
            }
        }
    }
    let host = HostInfo::fake();
    let n = |set: &[String]| {
        resolve(&ours, set, &host)
            .unwrap()
            .unwrap()
            .syscalls()
            .as_ref()
            .unwrap()
            .len()
    };
    eprintln!(
        "x86_64: {} rules for the default set, {} with all capabilities",
        n(&default),
        n(&all)
    );
}
