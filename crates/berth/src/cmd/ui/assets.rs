//! The dashboard's files, embedded in the binary (no disk reads, no CDN),
//! each with its content type and an ETag (a hash of its bytes).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

pub struct Asset {
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub ctype: &'static str,
}

macro_rules! assets {
    ($($path:literal => $ctype:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            bytes: include_bytes!(concat!("../../../ui/", $path)),
            ctype: $ctype,
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ALL: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "style.css" => CSS,
    "app.js" => JS,
    "api.js" => JS,
    "lib.js" => JS,
    "util.js" => JS,
    "dialog.js" => JS,
    "containers.js" => JS,
    "container.js" => JS,
    "stats.js" => JS,
    "logs.js" => JS,
    "terminal.js" => JS,
    "files.js" => JS,
    "tar.js" => JS,
    "images.js" => JS,
    "networks.js" => JS,
    "volumes.js" => JS,
    "host.js" => JS,
    "metrics.js" => JS,
    "prom.js" => JS,
    "vendor/preact/preact.module.js" => JS,
    "vendor/preact/hooks.module.js" => JS,
    "vendor/htm/htm.module.js" => JS,
    "vendor/uplot/uPlot.iife.min.js" => JS,
    "vendor/uplot/uPlot.min.css" => CSS,
    "vendor/xterm/xterm.js" => JS,
    "vendor/xterm/xterm.css" => CSS,
    "vendor/addon-fit/addon-fit.js" => JS,
];

/// The asset at `path` (below `/assets/`) and its ETag.
pub fn get(path: &str) -> Option<(&'static Asset, &'static str)> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ALL.iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.bytes)[..12])))
            .collect()
    });
    let i = ALL.iter().position(|a| a.path == path)?;
    Some((&ALL[i], tags[i].as_str()))
}

pub fn index() -> &'static [u8] {
    ALL[0].bytes
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_asset_is_typed_and_found() {
        for a in super::ALL {
            assert!(!a.bytes.is_empty(), "{}", a.path);
            let want = if a.path.ends_with(".js") {
                super::JS
            } else if a.path.ends_with(".css") {
                super::CSS
            } else {
                "text/html; charset=utf-8"
            };
            assert_eq!(a.ctype, want, "{}", a.path);
            assert!(super::get(a.path).is_some());
        }
        assert!(super::get("../Cargo.toml").is_none());
        assert_eq!(super::ALL[0].path, "index.html");
    }
}
