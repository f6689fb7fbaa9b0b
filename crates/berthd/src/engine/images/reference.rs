//! Image references: Docker's grammar (distribution/reference), the
//! normalisation it applies (`busybox` → `docker.io/library/busybox:latest`)
//! and the "familiar" forms shown to users (`myrepo/bb:v1`).

use std::fmt;

use crate::engine::{EngineError, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_MAX: usize = 255;

/// A normalised, named reference: always carries its registry domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `host:5000`, `[::1]:5000`.
    pub domain: String,
    /// `library/busybox`, `a/b`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

/// What a user may type where an image is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyRef {
    /// A full image ID (`<64 hex>` or `sha256:<64 hex>`), as hex.
    Id(String),
    Named(Reference),
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::invalid(msg)
}

fn is_64hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // A separator: ".", "_", "__" or a run of "-".
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == b.len() {
            return false;
        }
    }
}

/// `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
fn valid_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// host (`name(.name)*` or `[ipv6]`) with an optional `:port`.
fn valid_domain(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let v6 = &rest[..end];
        if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => ("[v6]", Some(p)),
            None if after.is_empty() => ("[v6]", None),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host == "[v6]" || host.split('.').all(valid_domain_component)
}

/// `[\w][\w.-]{0,127}`
pub fn valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|c| word(*c) || *c == b'.' || *c == b'-')
}

/// `algorithm:hex`; sha256 digests must be 64 lowercase hex characters.
pub fn validate_digest(s: &str) -> Result<()> {
    let (alg, hex) = s
        .split_once(':')
        .ok_or_else(|| invalid("invalid reference format"))?;
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg.split(['-', '_', '+', '.']).all(|p| {
            !p.is_empty()
                && p.as_bytes()[0].is_ascii_alphabetic()
                && p.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("invalid reference format"));
    }
    match alg {
        "sha256" if hex.len() != 64 => Err(invalid("invalid checksum digest length")),
        "sha256" if !is_64hex(hex) => Err(invalid("invalid checksum digest format")),
        "sha256" | "sha384" | "sha512" => Ok(()),
        _ => Err(invalid("unsupported digest algorithm")),
    }
}

/// Splits off the registry domain the way Docker does: the first component
/// is a domain only if it looks like one (has `.` or `:`, is `localhost`,
/// or has upper-case letters).
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first
            {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            } else {
                (first.to_string(), name[i + 1..].to_string())
            }
        }
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        rest = format!("{OFFICIAL_PREFIX}{rest}");
    }
    (domain, rest)
}

impl Reference {
    /// Docker's `ParseNormalizedNamed`: `busybox` → `docker.io/library/busybox`.
    /// No tag is added; see [`Reference::with_default_tag`].
    pub fn parse(s: &str) -> Result<Self> {
        if is_64hex(s) {
            return Err(invalid(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        if s.is_empty() {
            return Err(invalid("invalid reference format"));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder
            .split_once(['@'])
            .map(|(a, _)| a)
            .unwrap_or(&remainder);
        let remote = remote.split_once(':').map(|(a, _)| a).unwrap_or(remote);
        if remote.to_lowercase() != remote {
            return Err(invalid(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            )));
        }
        let (name_tag, digest) = match remainder.split_once('@') {
            Some((a, d)) => (a, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_tag.rfind(':') {
            Some(i) => (&name_tag[..i], Some(&name_tag[i + 1..])),
            None => (name_tag, None),
        };
        let bad = || invalid("invalid reference format");
        if !valid_domain(&domain) || !path.split('/').all(valid_path_component) {
            return Err(bad());
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad());
            }
        }
        if let Some(d) = digest {
            validate_digest(d)?;
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_MAX {
            return Err(invalid(format!(
                "repository name must not be more than {NAME_TOTAL_MAX} characters"
            )));
        }
        Ok(Self {
            domain,
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `repo` and `tag` as the tag and import endpoints receive them.
    pub fn parse_repo_tag(repo: &str, tag: &str) -> Result<Self> {
        let mut r = Self::parse(repo)?;
        if !tag.is_empty() {
            if r.digest.is_some() || r.tag.is_some() {
                return Err(invalid(format!(
                    "refusing to create a tag with a digest reference: {repo}:{tag}"
                )));
            }
            if !valid_tag(tag) {
                return Err(invalid(format!("invalid tag format: {tag:?}")));
            }
            r.tag = Some(tag.to_string());
        }
        Ok(r)
    }

    /// `TagNameOnly`: adds `:latest` when there is neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// `docker.io/library/busybox`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox`, `myrepo/bb`, `host:5000/a/b`
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// `busybox:latest`, `myrepo/bb@sha256:…`
    pub fn familiar(&self) -> String {
        format!("{}{}", self.familiar_name(), self.suffix())
    }

    /// A copy with only the name and tag (no digest).
    pub fn without_digest(&self) -> Self {
        Self {
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    /// The fully-qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name(), self.suffix())
    }
}

impl AnyRef {
    /// Docker's `ParseAnyReference`: a full ID (with or without `sha256:`)
    /// or a normalised name.
    pub fn parse(s: &str) -> Result<Self> {
        if is_64hex(s) {
            return Ok(Self::Id(s.to_string()));
        }
        if let Some(hex) = s.strip_prefix("sha256:") {
            validate_digest(s)?;
            return Ok(Self::Id(hex.to_string()));
        }
        Reference::parse(s).map(Self::Named)
    }
}

/// The message Docker gives for a missing image: the familiar reference
/// with the default tag added (`No such image: busybox:latest`).
pub fn no_such_image(s: &str) -> EngineError {
    let shown = match AnyRef::parse(s) {
        Ok(AnyRef::Named(r)) => r.with_default_tag().familiar(),
        Ok(AnyRef::Id(hex)) => format!("sha256:{hex}"),
        Err(_) => s.to_string(),
    };
    EngineError::not_found(format!("No such image: {shown}"))
}

/// `path.Match` as Go has it: `*` and `?` never match `/`; `[...]` classes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // Returns (matched, length of the class in p including brackets).
        let mut i = 1;
        let negate = p.get(1) == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let lo = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
            let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
                i += 1;
                let h = if p[i] == '\\' {
                    i += 1;
                    *p.get(i)?
                } else {
                    p[i]
                };
                i += 1;
                h
            } else {
                lo
            };
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                for k in 0..=n.len() {
                    if k > 0 && n[k - 1] == '/' {
                        break;
                    }
                    if go(rest, &n[k..]) {
                        return true;
                    }
                }
                false
            }
            Some('?') => !n.is_empty() && n[0] != '/' && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(p, *n.first().unwrap_or(&'\0'))) {
                (Some(c), Some((true, len))) if *c != '/' => go(&p[len..], &n[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && go(&p[2..], &n[1..]),
            Some(c) => !n.is_empty() && n[0] == *c && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Docker's `FamiliarMatch`: the pattern against the familiar string or,
/// failing that, the familiar name.
pub fn familiar_match(pattern: &str, r: &Reference) -> bool {
    glob_match(pattern, &r.familiar()) || glob_match(pattern, &r.familiar_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_table() {
        // input, full form, familiar form
        let ok = [
            ("busybox", "docker.io/library/busybox", "busybox"),
            (
                "busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("myrepo/bb:v1", "docker.io/myrepo/bb:v1", "myrepo/bb:v1"),
            ("docker.io/myrepo/bb", "docker.io/myrepo/bb", "myrepo/bb"),
            (
                "docker.io/library/alpine:3.19",
                "docker.io/library/alpine:3.19",
                "alpine:3.19",
            ),
            (
                "index.docker.io/library/alpine",
                "docker.io/library/alpine",
                "alpine",
            ),
            ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
            (
                "host:5000/a/b:tag",
                "host:5000/a/b:tag",
                "host:5000/a/b:tag",
            ),
            (
                "127.0.0.1:5000/busybox",
                "127.0.0.1:5000/busybox",
                "127.0.0.1:5000/busybox",
            ),
            (
                "localhost/foo:bar",
                "localhost/foo:bar",
                "localhost/foo:bar",
            ),
            ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"),
            ("a/b/c/d", "docker.io/a/b/c/d", "a/b/c/d"),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b",
                "library/a/b",
            ),
            ("a_b__c-d--e.f", "docker.io/library/a_b__c-d--e.f", "a_b__c-d--e.f"),
            ("Example.com/foo", "Example.com/foo", "Example.com/foo"),
            (
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            (
                "busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "busybox:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ];
        for (input, full, familiar) in ok {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
        let bad = [
            "",
            "Busybox",
            "myrepo/BB",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "busybox:",
            "busybox:-x",
            ":tag",
            "busybox@sha256:abc",
            "busybox@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "/a",
            "a/",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "host:port/a",
        ];
        for input in bad {
            assert!(Reference::parse(input).is_err(), "{input:?} should fail");
        }
        assert_eq!(
            Reference::parse("Busybox").unwrap_err().to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        let long = "a".repeat(256);
        assert!(Reference::parse(&long).is_err());
    }

    #[test]
    fn default_tag_and_any() {
        let r = Reference::parse("busybox").unwrap().with_default_tag();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(AnyRef::parse(hex).unwrap(), AnyRef::Id(hex.into()));
        assert_eq!(
            AnyRef::parse(&format!("sha256:{hex}")).unwrap(),
            AnyRef::Id(hex.into())
        );
        assert!(matches!(AnyRef::parse("abc123").unwrap(), AnyRef::Named(_)));
        assert_eq!(
            no_such_image("busybox").to_string(),
            "No such image: busybox:latest"
        );
        assert_eq!(
            no_such_image("docker.io/myrepo/bb:v1").to_string(),
            "No such image: myrepo/bb:v1"
        );
        let r = Reference::parse_repo_tag("docker.io/myrepo/bb", "v1").unwrap();
        assert_eq!(r.familiar(), "myrepo/bb:v1");
        assert!(Reference::parse_repo_tag("bb", "-bad").is_err());
    }

    #[test]
    fn globs_like_go() {
        let r = Reference::parse("myrepo/bb:v1").unwrap();
        assert!(familiar_match("myrepo/*", &r));
        assert!(familiar_match("myrepo/bb:v*", &r));
        assert!(familiar_match("*/bb", &r));
        assert!(!familiar_match("*", &r));
        assert!(familiar_match("myrepo/b[a-c]", &r));
        assert!(!familiar_match("myrepo/b[^b]", &r));
        assert!(glob_match("b?sybox", "busybox"));
    }
}
