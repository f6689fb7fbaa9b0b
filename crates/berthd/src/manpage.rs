//! `berthd __man DIR`: writes `DIR/berthd.8` from the daemon's flags
//! (`clap_mangen`), for the package. Hidden: not a flag of the daemon.

use std::path::Path;

use clap::CommandFactory;

/// The directory asked for by `berthd __man DIR`, if that is the command.
pub fn requested() -> Option<std::path::PathBuf> {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(cmd), Some(dir), None) if cmd == "__man" => Some(dir.into()),
        _ => None,
    }
}

pub fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = crate::config::Flags::command().name("berthd");
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
    std::fs::write(dir.join("berthd.8"), out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_names_the_daemon_and_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        super::write(dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("berthd.8")).unwrap();
        assert!(page.contains(".TH berthd 8"), "{page}");
        assert!(page.contains("data\\-root"), "{page}");
    }
}
