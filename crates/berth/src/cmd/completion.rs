//! `berth completion bash|zsh|fish` (clap_complete) and the hidden
//! `berth __man <dir>`, which writes a man page for every command
//! (clap_mangen): `berth.1`, `berth-container.1`, `berth-container-ls.1`, …

use std::path::Path;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct CompletionArgs {
    /// The shell to write a completion script for
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into (made if missing)
    dir: std::path::PathBuf,
}

pub fn completion(mut cmd: clap::Command, a: CompletionArgs) -> anyhow::Result<()> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(a.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}

pub fn man(cmd: clap::Command, a: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let mut cmd = cmd;
    cmd.build();
    let mut n = 0;
    write_pages(&cmd, "berth", &a.dir, &mut n)?;
    eprintln!("wrote {n} man pages to {}", a.dir.display());
    Ok(())
}

fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, n: &mut usize) -> anyhow::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    // clap names are `&'static str` (without its `string` feature, which
    // would rebuild every clap user): this one-off command leaks its few
    // kilobytes of page names.
    let page_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let bin_name: &'static str = Box::leak(name.replace('-', " ").into_boxed_str());
    let page = cmd.clone().name(page_name).bin_name(bin_name);
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    *n += 1;
    for sub in cmd.get_subcommands() {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, n)?;
    }
    Ok(())
}
