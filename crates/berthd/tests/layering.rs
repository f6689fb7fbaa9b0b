//! The engine's modules depend one way: no module reaches, directly or
//! through others, back into one that depends on it. A dependency is a
//! path (`crate::engine::x`, `super::x`, a `use` group naming `x`) or a
//! reach through the engine into another service's state
//! (`self.containers.`, also when rustfmt splits it over lines), which is
//! how a god object hides its cycles. Test modules are left out by
//! matching their braces, so code after one is still read.
//!
//! Also: no source file over 1 200 lines, and the CLI's commands
//! (`cmd/*.rs`) do not import each other (shared helpers live in
//! `cmd/common.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Engine fields that hold a service, and the module that owns it.
const SERVICES: &[(&str, &str)] = &[
    ("images", "images"),
    ("containers", "containers"),
    ("networks", "networks"),
    ("volumes", "volumes"),
    ("builder", "builder"),
    ("registries", "registry"),
];

/// Receivers through which a service is reached.
const RECEIVERS: &[&str] = &["self", "engine", "eng", "me", "e", "this"];

fn engine_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its test modules and its comments.
fn code_of(p: &Path) -> String {
    code_of_text(&std::fs::read_to_string(p).unwrap_or_default())
}

/// `text` without comments and the bodies of its `#[cfg(test)] mod x { .. }`
/// (the code after a test module stays), with the white space before a
/// `.` taken out, so that `self\n    .containers\n    .x` reads as
/// `self.containers.x`.
fn code_of_text(text: &str) -> String {
    let text: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let text = strip_test_modules(&text);
    let mut out = String::with_capacity(text.len());
    let mut pending = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            pending.push(c);
            continue;
        }
        if c != '.' {
            out.push_str(&pending);
        }
        pending.clear();
        out.push(c);
    }
    out.push_str(&pending);
    out
}

/// `text` with the body of each module under `#[cfg(test)]` removed, by
/// matching its braces.
fn strip_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after_attr = &rest[i + "#[cfg(test)]".len()..];
        let item = after_attr.trim_start();
        let is_mod = item.starts_with("mod ") || item.starts_with("pub mod ");
        let open = item.find(['{', ';']);
        match open {
            Some(o) if is_mod && item.as_bytes()[o] == b'{' => {
                rest = &item[o + body_len(&item[o..])..];
            }
            _ => rest = after_attr,
        }
    }
    out.push_str(rest);
    out
}

/// The length of the `{ .. }` that `text` starts with, braces in string
/// and character literals aside (all of `text` when it does not close).
fn body_len(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut depth, mut j, mut in_str) = (0usize, 0, false);
    while j < b.len() {
        match b[j] {
            b'\\' if in_str => j += 1,
            b'"' => in_str = !in_str,
            b'\'' if !in_str && b.get(j + 2) == Some(&b'\'') => j += 2,
            b'{' if !in_str => depth += 1,
            b'}' if !in_str => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    b.len()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Identifiers that follow `prefix` in `code` (`prefix` then an identifier).
fn after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `prefix{a, b::c, d as e}`: the first segment of each item.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                if !first.is_empty() {
                    out.push(first);
                }
            }
            continue;
        }
        let id: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if !id.is_empty() {
            out.push(id);
        }
    }
    out
}

/// The engine module a file belongs to and how many `super::` lead from
/// it to the engine.
fn module_of(root: &Path, file: &Path) -> (String, usize) {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let module = parts[0].trim_end_matches(".rs").to_string();
    // engine/m.rs, engine/m/mod.rs: `super` is the engine.
    let mut depth = parts.len();
    if parts.last().is_some_and(|l| l == "mod.rs") {
        depth -= 1;
    }
    (module, depth.max(1))
}

/// Module → module → the files that make the edge.
fn engine_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let root = engine_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&root, f).0)
        .filter(|m| m != "mod")
        .collect();
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let (m, depth) = module_of(&root, f);
        if m == "mod" {
            continue;
        }
        let code = code_of(f);
        let sup = "super::".repeat(depth);
        let mut named = after(&code, "crate::engine::");
        named.extend(after(&code, &sup));
        for (field, owner) in SERVICES {
            for r in RECEIVERS {
                if code.contains(&format!("{r}.{field}.")) {
                    named.push(owner.to_string());
                }
            }
        }
        let shown = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for n in named {
            if n != m && modules.contains(&n) {
                g.entry(m.clone())
                    .or_default()
                    .entry(n)
                    .or_default()
                    .insert(shown.clone());
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    start: &str,
) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).map(|m| m.keys()).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(g, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn engine_modules_depend_one_way() {
    let g = engine_graph();
    assert!(
        g.contains_key("containers") && g["containers"].contains_key("images"),
        "the scan found no dependencies: it is broken"
    );
    for m in g.keys() {
        if let Some(cycle) = cycle_from(&g, m) {
            let why: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} (in {:?})", w[0], w[1], g[&w[0]][&w[1]]))
                .collect();
            panic!("engine modules import each other:\n  {}", why.join("\n  "));
        }
    }
}

#[test]
fn the_scan_sees_a_cycle_when_there_is_one() {
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a")] {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), BTreeSet::new());
    }
    assert_eq!(
        cycle_from(&g, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        after("use super::{a, b::c, d as e};", "super::"),
        ["a", "b", "d"]
    );
    assert_eq!(after("x::super::y", "super::"), Vec::<String>::new());
}

#[test]
fn the_scan_reads_past_a_test_module_and_across_lines() {
    let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn t() { let _ = ('{', \"}\"); self.images.x(); }\n}\nimpl Engine {\n}\nfn b(&self) {\n    self\n        .containers\n        .find(x)\n}\n";
    let code = code_of_text(text);
    assert!(!code.contains("self.images."), "{code}");
    assert!(code.lines().any(extends_the_engine), "{code}");
    assert!(code.contains("self.containers.find(x)"), "{code}");
    assert!(code.contains("fn a() {}"), "{code}");
}

#[test]
fn no_source_file_is_over_1200_lines() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "tests", "bench"] {
        rust_files(&repo.join(dir), &mut files);
    }
    assert!(
        files.len() > 100,
        "the scan found too few files: it is broken"
    );
    let long: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > 1200).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 1 200 lines: {long:?}");
}

#[test]
fn cli_commands_do_not_import_each_other() {
    let cmd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../berth/src/cmd");
    let mut files = Vec::new();
    rust_files(&cmd, &mut files);
    // A command is `cmd/<name>.rs` or a directory `cmd/<name>/`, whose
    // files may use each other (`super::` inside it is the command itself).
    let command_of = |f: &Path| -> Option<(String, bool)> {
        let rel = f.strip_prefix(&cmd).ok()?;
        let mut parts = rel.components();
        let first = parts.next()?.as_os_str().to_string_lossy().into_owned();
        match parts.next() {
            None => Some((first.trim_end_matches(".rs").to_string(), false)),
            Some(_) => Some((first, true)),
        }
    };
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| command_of(f).map(|(n, _)| n))
        .filter(|n| n != "mod" && n != "common")
        .collect();
    assert!(
        names.len() > 5,
        "the scan found too few commands: it is broken"
    );
    let mut bad = Vec::new();
    for f in &files {
        let Some((me, nested)) = command_of(f) else {
            continue;
        };
        if me == "mod" {
            continue;
        }
        let code = code_of(f);
        let mut named = after(&code, "crate::cmd::");
        named.extend(after(
            &code,
            if nested { "super::super::" } else { "super::" },
        ));
        for n in named {
            if names.contains(&n) && n != me {
                bad.push(format!("{} uses cmd/{n}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "commands import each other: {bad:?}");
}

/// Services that own their operations: their modules add nothing to the
/// `Engine` (the composition root), so they can be used and tested alone.
/// The list grows as services move their operations off the engine.
const OWN_THEIR_OPERATIONS: &[&str] = &[
    "containers",
    "reconcile.rs",
    "images",
    "volumes",
    "networks",
    "registry",
    "builder",
    "logging",
    "fs",
    "plugins",
    "store.rs",
    "events.rs",
    "cgroups.rs",
    "mountinfo.rs",
    "clock.rs",
    "host.rs",
    "ids.rs",
    "trash.rs",
    "users.rs",
    "signal.rs",
    "error.rs",
    "metrics.rs",
    "settings.rs",
];

/// What may extend `Engine`: the views across every service (`system.rs`:
/// info, version, df; `scrape.rs`: what a metrics scrape reads) and the
/// root (`mod.rs`: the wiring, shutdown).
const EXTEND_THE_ENGINE: &[&str] = &["system.rs", "scrape.rs", "mod.rs"];

/// `impl Engine {`, `impl<T> Engine {`, `impl Backend for Engine {`,
/// `impl x::Engine {`: a line that adds to the engine.
fn extends_the_engine(line: &str) -> bool {
    let l = line.trim_end();
    l.starts_with("impl") && (l.ends_with(" Engine {") || l.ends_with("::Engine {"))
}

#[test]
fn the_scan_sees_an_impl_of_the_engine() {
    for l in [
        "impl Engine {",
        "impl<'a> Engine {",
        "impl Backend for Engine {",
        "impl crate::engine::Engine {",
    ] {
        assert!(extends_the_engine(l), "{l}");
    }
    for l in [
        "impl Containers {",
        "impl Backend for Containers {",
        "    engine: Engine {",
    ] {
        assert!(!extends_the_engine(l), "{l}");
    }
}

#[test]
fn services_that_own_their_operations_do_not_extend_the_engine() {
    let root = engine_dir();
    let mut bad = Vec::new();
    for m in OWN_THEIR_OPERATIONS {
        let mut files = Vec::new();
        let p = root.join(m);
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else {
            files.push(p);
        }
        assert!(!files.is_empty(), "{m}: no such module");
        for f in files {
            let code = code_of(&f);
            if code.lines().any(extends_the_engine) {
                bad.push(f.display().to_string());
            }
        }
    }
    assert!(bad.is_empty(), "these extend the Engine: {bad:?}");
}

#[test]
fn every_engine_module_owns_its_operations_or_is_the_root() {
    // A new module must say which it is: one that owns its operations,
    // or (rarely) part of the composition root.
    let mut unlisted = Vec::new();
    for e in std::fs::read_dir(engine_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !OWN_THEIR_OPERATIONS.contains(&name.as_str())
            && !EXTEND_THE_ENGINE.contains(&name.as_str())
        {
            unlisted.push(name);
        }
    }
    assert!(
        unlisted.is_empty(),
        "engine modules in neither list of layering.rs: {unlisted:?}"
    );
}
