//! Image references: Docker's grammar, normalisation and familiar forms
//! live in `berth_api::reference`; this adds the daemon's error for a
//! missing image.

pub use berth_api::reference::{
    familiar_match, valid_tag, validate_digest, AnyRef, Reference, DEFAULT_DOMAIN, DEFAULT_TAG,
};

use crate::engine::EngineError;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_images_are_named_familiarly() {
        assert_eq!(
            no_such_image("busybox").to_string(),
            "No such image: busybox:latest"
        );
        assert_eq!(
            no_such_image("docker.io/myrepo/bb:v1").to_string(),
            "No such image: myrepo/bb:v1"
        );
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            no_such_image(hex).to_string(),
            format!("No such image: sha256:{hex}")
        );
        assert_eq!(no_such_image("a b").to_string(), "No such image: a b");
    }
}
