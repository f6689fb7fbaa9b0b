//! The `name:alias` form of legacy links (`HostConfig.Links`,
//! `EndpointSettings.Links`, `--link`). Docker also accepts the form it
//! shows in inspect, `/name:/parent/alias`, so a configuration read back
//! from a container can be sent again.

/// Why a link specification was refused; the text is Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// An empty specification.
    #[error("empty string specified for links")]
    Empty,
    /// More than one `:`; carries the specification.
    #[error("bad format for links: {0}")]
    BadFormat(String),
}

/// Splits a link into the target container's name and the alias; a link
/// without an alias uses the name.
pub fn parse(spec: &str) -> Result<(String, String), LinkError> {
    if spec.is_empty() {
        return Err(LinkError::Empty);
    }
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [name] => Ok((name.to_string(), name.to_string())),
        [name, alias] => match name.strip_prefix('/') {
            // `/name:/parent/alias`: the alias is the last path element.
            Some(n) => Ok((
                n.to_string(),
                alias.rsplit('/').next().unwrap_or_default().to_string(),
            )),
            None => Ok((name.to_string(), alias.to_string())),
        },
        _ => Err(LinkError::BadFormat(spec.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_docker_accepts() {
        assert_eq!(parse("web:db").unwrap(), ("web".into(), "db".into()));
        assert_eq!(parse("web").unwrap(), ("web".into(), "web".into()));
        assert_eq!(parse("/web:/app/db").unwrap(), ("web".into(), "db".into()));
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "empty string specified for links"
        );
        assert_eq!(
            parse("a:b:c").unwrap_err().to_string(),
            "bad format for links: a:b:c"
        );
    }
}
