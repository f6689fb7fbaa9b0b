//! Image references: Docker's grammar (distribution/reference), the
//! normalisation it applies (`busybox` → `docker.io/library/busybox:latest`)
//! and the "familiar" forms shown to users (`myrepo/bb:v1`).

use std::fmt;

use crate::pattern::path_match;

/// Why a reference was refused; the texts are distribution/reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Does not fit the grammar.
    #[error("invalid reference format")]
    Format,
    /// A 64-hex-digit string where a name was expected.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// Upper case in the repository part (the remote, as Docker cuts it).
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// Domain and path together are over 255 characters.
    #[error("repository name must not be more than {NAME_TOTAL_MAX} characters")]
    NameTooLong,
    /// A sha256 digest without 64 hex digits.
    #[error("invalid checksum digest length")]
    DigestLength,
    /// A sha256 digest with upper-case hex.
    #[error("invalid checksum digest format")]
    DigestFormat,
    /// A well-formed digest of an algorithm other than sha256/384/512.
    #[error("unsupported digest algorithm")]
    DigestAlgorithm,
    /// `repo:tag` given separately when `repo` already has a tag or digest.
    #[error("refusing to create a tag with a digest reference: {0}")]
    TagWithDigest(String),
    /// A separately given tag that does not fit the tag grammar.
    #[error("invalid tag format: {0:?}")]
    InvalidTag(String),
}

/// What [`Reference`] parsing returns.
pub type Result<T> = std::result::Result<T, ReferenceError>;

/// The registry a name without one belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
/// The tag a name without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_MAX: usize = 255;

/// A normalised, named reference: always carries its registry domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `host:5000`, `[::1]:5000`.
    pub domain: String,
    /// `library/busybox`, `a/b`.
    pub path: String,
    /// `latest`, `v1`.
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

/// What a user may type where an image is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyRef {
    /// A full image ID (`<64 hex>` or `sha256:<64 hex>`), as hex.
    Id(String),
    /// Anything else, as a name.
    Named(Reference),
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
    let (alg, hex) = s.split_once(':').ok_or(ReferenceError::Format)?;
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg.split(['-', '_', '+', '.']).all(|p| {
            !p.is_empty()
                && p.as_bytes()[0].is_ascii_alphabetic()
                && p.bytes().all(|c| c.is_ascii_alphanumeric())
        });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(ReferenceError::Format);
    }
    match alg {
        "sha256" if hex.len() != 64 => Err(ReferenceError::DigestLength),
        "sha256" if !is_64hex(hex) => Err(ReferenceError::DigestFormat),
        "sha256" | "sha384" | "sha512" => Ok(()),
        _ => Err(ReferenceError::DigestAlgorithm),
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

/// The fully qualified form of a repository name, without checking it:
/// `busybox` → `docker.io/library/busybox`, `host:5000/a` unchanged.
pub fn normalize_name(name: &str) -> String {
    let (domain, path) = split_docker_domain(name);
    format!("{domain}/{path}")
}

impl Reference {
    /// Docker's `ParseNormalizedNamed`: `busybox` → `docker.io/library/busybox`.
    /// No tag is added; see [`Reference::with_default_tag`].
    pub fn parse(s: &str) -> Result<Self> {
        if is_64hex(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        if s.is_empty() {
            return Err(ReferenceError::Format);
        }
        let (domain, remainder) = split_docker_domain(s);
        // Docker cuts the remote at the first `:` only, so a digest stays
        // in it (`library/a@SHA256` is reported as not lower case).
        let remote = remainder
            .split_once(':')
            .map(|(a, _)| a)
            .unwrap_or(&remainder);
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_string()));
        }
        let (name_tag, digest) = match remainder.split_once('@') {
            Some((a, d)) => (a, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_tag.rfind(':') {
            Some(i) => (&name_tag[..i], Some(&name_tag[i + 1..])),
            None => (name_tag, None),
        };
        let bad = || ReferenceError::Format;
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
            return Err(ReferenceError::NameTooLong);
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
                return Err(ReferenceError::TagWithDigest(format!("{repo}:{tag}")));
            }
            if !valid_tag(tag) {
                return Err(ReferenceError::InvalidTag(tag.to_string()));
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

    /// Neither tag nor digest.
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

/// Docker's `FamiliarMatch`: the pattern against the familiar string or,
/// failing that, the familiar name.
pub fn familiar_match(pattern: &str, r: &Reference) -> bool {
    path_match(pattern, &r.familiar()) || path_match(pattern, &r.familiar_name())
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
        let r = Reference::parse_repo_tag("docker.io/myrepo/bb", "v1").unwrap();
        assert_eq!(r.familiar(), "myrepo/bb:v1");
        assert!(Reference::parse_repo_tag("bb", "-bad").is_err());
    }

    #[test]
    fn errors_as_docker() {
        let e = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert_eq!(e("a b"), "invalid reference format");
        assert_eq!(e("img:"), "invalid reference format");
        assert_eq!(
            e("Foo"),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        assert_eq!(
            e("localhost:5000/Foo:1"),
            "invalid reference format: repository name (Foo) must be lowercase"
        );
        let hex = "a".repeat(64);
        assert_eq!(
            e(&hex),
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings")
        );
        assert_eq!(
            e(&format!("img@SHA256:{hex}")),
            format!(
                "invalid reference format: repository name (library/img@SHA256) must be lowercase"
            )
        );
        assert_eq!(
            e(&format!("img@sha256:{}", &hex[..40])),
            "invalid checksum digest length"
        );
        assert_eq!(
            e(&format!("img@sha256:{}", hex.to_uppercase())),
            "invalid checksum digest format"
        );
        assert_eq!(e(&format!("img@md5:{hex}")), "unsupported digest algorithm");
        assert_eq!(
            e(&format!("{}/{}", "a".repeat(200), "b".repeat(60))),
            "repository name must not be more than 255 characters"
        );
        let r = Reference::parse("[::1]:5000/x").unwrap();
        assert_eq!((r.name(), r.tag), ("[::1]:5000/x".into(), None));
        assert_eq!(
            Reference::parse_repo_tag("bb:1", "2")
                .unwrap_err()
                .to_string(),
            "refusing to create a tag with a digest reference: bb:1:2"
        );
        assert_eq!(
            Reference::parse_repo_tag("bb", "-bad")
                .unwrap_err()
                .to_string(),
            "invalid tag format: \"-bad\""
        );
    }

    #[test]
    fn names_normalise() {
        assert_eq!(normalize_name("busybox"), "docker.io/library/busybox");
        assert_eq!(normalize_name("myrepo/bb"), "docker.io/myrepo/bb");
        assert_eq!(normalize_name("127.0.0.1:5000/bb"), "127.0.0.1:5000/bb");
        assert_eq!(normalize_name("index.docker.io/bb"), "docker.io/library/bb");
        assert_eq!(normalize_name("localhost/bb"), "localhost/bb");
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
    }
}
