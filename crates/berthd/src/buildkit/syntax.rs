//! What decides which frontend builds, and for which platform: the
//! Dockerfile's `# syntax=` directive (or the `BUILDKIT_SYNTAX` build arg,
//! which wins), and the `platform` attribute. berthd has one frontend,
//! its own Dockerfile builder, and one platform, the host's: Docker's
//! official Dockerfile frontend images build with the built-in one (it
//! implements their syntax); anything else is refused before any step.

use std::collections::HashMap;
use std::sync::Arc;

use super::jobs::Job;
use super::progress::Vtx;
use super::{host_arch, BuildKitError};
use crate::engine::images::reference::Reference;

/// The `# syntax=` directive of `text`: parser directives are `# key=value`
/// comment lines at the very top; the first other line ends them.
fn directive(text: &str) -> Option<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in text.lines() {
        let rest = line.trim().strip_prefix('#')?;
        let (k, v) = rest.split_once('=')?;
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        if k.eq_ignore_ascii_case("syntax") {
            return Some(v.trim().to_string()).filter(|v| !v.is_empty());
        }
    }
    None
}

/// Whether `image` names Docker's Dockerfile frontend
/// (`docker/dockerfile` or `docker/dockerfile-upstream` on Docker Hub,
/// any tag or digest).
fn is_official(image: &str) -> bool {
    Reference::parse(image).is_ok_and(|r| {
        r.domain == "docker.io"
            && matches!(
                r.path.as_str(),
                "docker/dockerfile" | "docker/dockerfile-upstream"
            )
    })
}

/// The frontend image a build asks for: `BUILDKIT_SYNTAX` (its first word:
/// the rest are the frontend's arguments), else the directive.
pub(super) fn requested(text: &str, syntax_arg: Option<&str>) -> Option<String> {
    syntax_arg
        .and_then(|a| a.split_whitespace().next())
        .map(str::to_string)
        .or_else(|| directive(text))
}

/// Refuses a build for another frontend; for Docker's own, says on the
/// job's progress that the built-in frontend builds it.
pub(super) fn check(
    job: &Arc<Job>,
    text: &str,
    syntax_arg: Option<&str>,
) -> Result<(), BuildKitError> {
    let Some(image) = requested(text, syntax_arg) else {
        return Ok(());
    };
    let v = Vtx::start(job, &format!("[internal] resolve frontend {image}"));
    if !is_official(&image) {
        let m = unsupported(&image);
        v.fail(&m);
        return Err(BuildKitError::Unsupported(m));
    }
    v.log(
        1,
        format!("{image} is Docker's Dockerfile frontend: building with berthd's built-in Dockerfile frontend (the image is not pulled)\n")
            .as_bytes(),
    );
    v.done();
    Ok(())
}

/// The attributes a frontend runs with: `dockerfile.v0` as they are;
/// `gateway.v0` (buildx's request when `BUILDKIT_SYNTAX` is set) with its
/// `source` image as the `BUILDKIT_SYNTAX` that `check` reads.
pub(super) fn frontend_attrs(
    frontend: &str,
    attrs: &HashMap<String, String>,
) -> Result<HashMap<String, String>, BuildKitError> {
    match frontend {
        "dockerfile.v0" => Ok(attrs.clone()),
        "gateway.v0" => {
            let source = attrs.get("source").filter(|s| !s.is_empty()).ok_or_else(|| {
                BuildKitError::Invalid("the gateway.v0 frontend needs a source image".into())
            })?;
            let mut a = attrs.clone();
            a.insert("build-arg:BUILDKIT_SYNTAX".into(), source.clone());
            Ok(a)
        }
        f => Err(BuildKitError::Unsupported(format!(
            "frontend {f:?} is not supported by berthd: it runs only the built-in Dockerfile frontend (dockerfile.v0)"
        ))),
    }
}

fn unsupported(image: &str) -> String {
    format!("unsupported frontend {image:?}: berthd runs only the built-in Dockerfile frontend")
}

/// The `platform` attribute (or parameter) checked against the host's:
/// the normalised platform (`linux/<arch>`), or an error naming it. An
/// empty value is the host's.
pub(super) fn platform(p: &str) -> Result<String, BuildKitError> {
    let host = format!("linux/{}", host_arch());
    let p = p.trim();
    if p.is_empty() {
        return Ok(String::new());
    }
    let refuse =
        |why: &str| BuildKitError::Unsupported(format!("berthd builds only for {host}: {why}"));
    if p.contains(',') {
        return Err(refuse(&format!(
            "multi-platform builds ({p}) are not supported"
        )));
    }
    let parts: Vec<String> = p.split('/').map(|s| s.to_ascii_lowercase()).collect();
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (os.as_str(), arch.as_str(), ""),
        [os, arch, variant] => (os.as_str(), arch.as_str(), variant.as_str()),
        // `amd64` alone means the host's OS, as containerd reads it.
        [arch] => ("linux", arch.as_str(), ""),
        _ => return Err(refuse(&format!("invalid platform {p:?}"))),
    };
    // containerd's normalisation: Go's names for the architecture, and
    // the variants that only restate it dropped.
    let (arch, variant) = match (arch, variant) {
        ("x86_64" | "x86-64" | "amd64", "" | "v1") => ("amd64", ""),
        ("aarch64" | "arm64", "" | "v8") => ("arm64", ""),
        ("i386" | "i686" | "386", "") => ("386", ""),
        (a, v) => (a, v),
    };
    if os != "linux" || arch != host_arch() || !variant.is_empty() {
        return Err(refuse(&format!("platform {p} was asked for")));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syntax_directive_and_build_arg() {
        assert_eq!(
            directive("# syntax=docker/dockerfile:1\nFROM x\n").as_deref(),
            Some("docker/dockerfile:1")
        );
        assert_eq!(
            directive("# escape=`\n#syntax = x/y:z \nFROM x\n").as_deref(),
            Some("x/y:z")
        );
        // Not at the top: a comment.
        assert_eq!(directive("FROM x\n# syntax=x/y\n"), None);
        assert_eq!(directive("# a comment\n# syntax=x/y\n"), None);
        assert_eq!(directive("\n# syntax=x/y\n"), None);
        assert_eq!(
            requested("# syntax=a/b\n", Some("docker/dockerfile:1.7 --x")).as_deref(),
            Some("docker/dockerfile:1.7")
        );
        assert_eq!(requested("# syntax=a/b\n", None).as_deref(), Some("a/b"));
    }

    #[test]
    fn only_dockers_dockerfile_frontend_is_built_in() {
        for ok in [
            "docker/dockerfile:1",
            "docker/dockerfile",
            "docker.io/docker/dockerfile:1.7-labs",
            "docker/dockerfile-upstream:master",
            "docker/dockerfile@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert!(is_official(ok), "{ok}");
        }
        for bad in [
            "x/y:z",
            "docker/dockerfile-fork:1",
            "ghcr.io/docker/dockerfile:1",
            "tonistiigi/dockerfile:1",
        ] {
            assert!(!is_official(bad), "{bad}");
        }
        assert_eq!(
            unsupported("x/y:z"),
            r#"unsupported frontend "x/y:z": berthd runs only the built-in Dockerfile frontend"#
        );
    }

    #[test]
    fn gateway_frontend_takes_its_source_as_the_syntax() {
        let mut attrs = HashMap::new();
        attrs.insert("source".to_string(), "docker/dockerfile:1".to_string());
        let a = frontend_attrs("gateway.v0", &attrs).unwrap();
        assert_eq!(a["build-arg:BUILDKIT_SYNTAX"], "docker/dockerfile:1");
        assert!(frontend_attrs("gateway.v0", &HashMap::new()).is_err());
        assert!(frontend_attrs("dockerfile.v0", &HashMap::new()).is_ok());
        assert!(frontend_attrs("custom.v1", &attrs).is_err());
    }

    #[test]
    fn only_the_hosts_platform() {
        let host = format!("linux/{}", host_arch());
        assert_eq!(platform("").unwrap(), "");
        assert_eq!(platform(&host).unwrap(), host);
        assert_eq!(platform(&host.to_uppercase()).unwrap(), host);
        if host_arch() == "amd64" {
            assert_eq!(platform("linux/x86_64").unwrap(), host);
            assert_eq!(platform("linux/amd64/v1").unwrap(), host);
            assert!(platform("linux/amd64/v3").is_err());
            let e = platform("linux/arm64").unwrap_err().to_string();
            assert_eq!(
                e,
                "berthd builds only for linux/amd64: platform linux/arm64 was asked for"
            );
        }
        let e = platform(&format!("{host},linux/s390x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("multi-platform"), "{e}");
        assert!(platform("windows/amd64").is_err());
        assert!(platform("linux/amd64/v2/x").is_err());
    }
}
