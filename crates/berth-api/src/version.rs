//! API version arithmetic: `/v1.NN/` prefixes and Docker's version errors.

use std::fmt;
use std::str::FromStr;

/// The version berthd announces on `/_ping` (the docker 28.x CLI's own).
pub const API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 50,
};
/// The oldest version served, as moby 28.
pub const MIN_API_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};

/// An Engine API version, `major.minor` (the `1.50` of `/v1.50/`), ordered
/// numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// The major number (always 1 so far).
    pub major: u32,
    /// The minor number.
    pub minor: u32,
}

impl ApiVersion {
    /// The version `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// `true` when this version is at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion::new(major, minor)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version string that is not `N.N` (one to six digits each); carries
/// the string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid API version {0:?}")]
pub struct BadVersion(pub String);

impl FromStr for ApiVersion {
    type Err = BadVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('.').ok_or_else(|| BadVersion(s.into()))?;
        let parse = |p: &str| -> Result<u32, BadVersion> {
            if p.is_empty() || p.len() > 6 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(BadVersion(s.into()));
            }
            p.parse().map_err(|_| BadVersion(s.into()))
        };
        Ok(ApiVersion::new(parse(a)?, parse(b)?))
    }
}

/// Docker's messages for a version outside the served range.
pub fn check_supported(v: ApiVersion) -> Result<(), String> {
    if v > API_VERSION {
        return Err(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        ));
    }
    if v < MIN_API_VERSION {
        return Err(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    Ok(())
}

/// Splits a request path into its optional `/vX.Y` prefix and the rest.
/// `/v1.50/containers/json` → `(Some("1.50"), "/containers/json")`.
pub fn split_version_prefix(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let candidate = &rest[..end];
        if !candidate.is_empty() && candidate.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            return (Some(candidate), &rest[end..]);
        }
    }
    (None, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let v: ApiVersion = "1.41".parse().unwrap();
        assert_eq!(v, ApiVersion::new(1, 41));
        assert!(v < API_VERSION);
        assert!("1.9".parse::<ApiVersion>().unwrap() < "1.10".parse().unwrap());
        assert!("1".parse::<ApiVersion>().is_err());
        assert!("1.x".parse::<ApiVersion>().is_err());
        assert!("1.".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn range_messages_match_docker() {
        assert_eq!(
            check_supported("1.51".parse().unwrap()).unwrap_err(),
            "client version 1.51 is too new. Maximum supported API version is 1.50"
        );
        assert!(check_supported("1.23".parse().unwrap())
            .unwrap_err()
            .starts_with("client version 1.23 is too old. Minimum supported API version is 1.24"));
        assert!(check_supported("1.24".parse().unwrap()).is_ok());
        assert!(check_supported("1.50".parse().unwrap()).is_ok());
    }

    #[test]
    fn splits_prefixes() {
        assert_eq!(split_version_prefix("/v1.50/info"), (Some("1.50"), "/info"));
        assert_eq!(
            split_version_prefix("/v9.99/version"),
            (Some("9.99"), "/version")
        );
        assert_eq!(split_version_prefix("/_ping"), (None, "/_ping"));
        assert_eq!(split_version_prefix("/volumes/x"), (None, "/volumes/x"));
        assert_eq!(split_version_prefix("/v1.41"), (Some("1.41"), ""));
    }
}
