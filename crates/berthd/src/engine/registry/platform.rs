//! Platforms (`os/arch[/variant]`), as containerd's `platforms` package
//! parses, normalises and matches them.

use crate::engine::host::go_arch;
use crate::engine::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let a = arch.to_ascii_lowercase();
    let v = variant.map(str::to_ascii_lowercase);
    match a.as_str() {
        "i386" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), v.filter(|v| v != "v1")),
        "aarch64" | "arm64" => ("arm64".into(), v.filter(|v| v != "v8" && v != "8")),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => (
            "arm".into(),
            Some(match v.as_deref() {
                None | Some("7") | Some("v7") => "v7".into(),
                Some("5") | Some("v5") => "v5".into(),
                Some("6") | Some("v6") => "v6".into(),
                Some("8") | Some("v8") => "v8".into(),
                Some(o) => o.to_string(),
            }),
        ),
        _ => (a, v),
    }
}

const KNOWN_OS: &[&str] = &[
    "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
];

impl Platform {
    /// The daemon's own platform.
    pub fn host() -> Self {
        let (architecture, variant) = normalize_arch(go_arch(), None);
        Self {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalize_arch(arch, variant.filter(|v| !v.is_empty()));
        Self {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// `linux/arm64`, `linux/arm/v7`, `arm64` (OS defaults to linux),
    /// `linux` (architecture defaults to the host's).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            EngineError::invalid(format!(
                "\"{s}\": unknown operating system or architecture: invalid argument"
            ))
        };
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [one] => {
                if KNOWN_OS.contains(&one.to_ascii_lowercase().as_str()) {
                    let h = Self::host();
                    Ok(Self::new(one, &h.architecture, h.variant.as_deref()))
                } else {
                    Ok(Self::new("linux", one, None))
                }
            }
            [os, arch] => Ok(Self::new(os, arch, None)),
            [os, arch, variant] => Ok(Self::new(os, arch, Some(variant))),
            _ => Err(bad()),
        }
    }

    /// Whether a descriptor's or config's platform satisfies this one.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let other = Self::new(os, arch, variant);
        other.os == self.os
            && other.architecture == self.architecture
            && (self.variant.is_none() || other.variant == self.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "aarch64", None));
        assert!(!p.matches("linux", "amd64", None));
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert!(p.matches("linux", "arm", None), "arm defaults to v7");
        assert!(!p.matches("linux", "arm", Some("v6")));
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux//").is_err());
        assert_eq!(Platform::host().os, "linux");
    }
}
