//! Reading objects back from a test daemon: `docker inspect` (formatted or
//! as JSON) and the API's JSON answers.

use serde_json::Value;

use crate::Daemon;

impl Daemon {
    /// `docker inspect -f FMT NAME`, trimmed.
    pub fn inspect_format(&self, name: &str, fmt: &str) -> String {
        self.docker_ok(&["inspect", "-f", fmt, name])
            .trim()
            .to_string()
    }

    /// `docker image inspect -f FMT IMAGE`, trimmed.
    pub fn image_inspect_format(&self, image: &str, fmt: &str) -> String {
        self.docker_ok(&["image", "inspect", "-f", fmt, image])
            .trim()
            .to_string()
    }

    /// A container's IPv4 address on `network` (empty when not attached).
    pub fn ip_on(&self, container: &str, network: &str) -> String {
        self.inspect_format(
            container,
            &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        )
    }

    /// `docker inspect NAME`: its one object.
    pub fn inspect_json(&self, name: &str) -> Value {
        first_of(&self.docker_ok(&["inspect", name]))
    }

    /// `docker image inspect IMAGE`: its one object.
    pub fn image_inspect_json(&self, image: &str) -> Value {
        first_of(&self.docker_ok(&["image", "inspect", image]))
    }

    /// `GET /v1.41/{kind}/{name}/json` (`kind`: `containers`, `images`...).
    pub fn api_inspect(&self, kind: &str, name: &str) -> Value {
        self.get_json(&format!("/v1.41/{kind}/{name}/json"))
    }

    /// `GET path` through the API, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, _, body) = self.raw("GET", path, None);
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON body")
    }
}

fn first_of(out: &str) -> Value {
    let v: Value = serde_json::from_str(out).expect("inspect JSON");
    v[0].clone()
}
