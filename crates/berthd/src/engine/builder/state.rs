//! A build stage's state between steps: the image it stands on, the
//! config being built, and the build's variables (`ARG`/`ENV`).

use super::*;

/// The image a stage stands on, and the config it is building.
#[derive(Clone)]
pub(super) struct State {
    /// Empty for `FROM scratch` before the first step.
    pub(super) image_id: String,
    /// The image config (JSON) the next step derives from.
    pub(super) spec: serde_json::Value,
    pub(super) config: ImageConfig,
    /// This stage's `ARG`s and their values.
    pub(super) args: BTreeMap<String, Option<String>>,
    pub(super) cmd_set: bool,
}

impl State {
    pub(super) fn scratch() -> Self {
        Self {
            image_id: String::new(),
            spec: serde_json::json!({
                "architecture": host_arch(),
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }),
            config: ImageConfig::default(),
            args: BTreeMap::new(),
            cmd_set: false,
        }
    }

    pub(super) fn of_image(img: &crate::engine::images::Image) -> Result<Self> {
        let spec: serde_json::Value = serde_json::from_str(&img.raw_config)?;
        Ok(Self {
            image_id: img.id.clone(),
            spec,
            config: img.config.config.clone().unwrap_or_default(),
            args: BTreeMap::new(),
            cmd_set: false,
        })
    }

    pub(super) fn env_get(&self, k: &str) -> Option<String> {
        self.config
            .env
            .as_ref()?
            .iter()
            .rev()
            .find_map(|e| match e.split_once('=') {
                Some((a, b)) if a == k => Some(b.to_string()),
                None if e == k => Some(String::new()),
                _ => None,
            })
    }

    /// A variable for substitution: ENV first, then this stage's ARGs.
    pub(super) fn var(&self, k: &str) -> Option<String> {
        self.env_get(k)
            .or_else(|| self.args.get(k).cloned().flatten())
    }

    pub(super) fn set_env(&mut self, k: &str, v: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let item = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(a, _)| a) == Some(k) || e.as_str() == k)
        {
            Some(e) => *e = item,
            None => env.push(item),
        }
    }

    pub(super) fn shell(&self) -> Vec<String> {
        self.config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub(super) fn top_chain(&self) -> Option<String> {
        let diffs: Vec<String> = self.spec["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        crate::engine::images::spec::chain_ids(&diffs)
            .last()
            .cloned()
    }
}

pub(super) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_env_and_vars() {
        let mut st = State::scratch();
        st.args.insert("A".into(), Some("arg".into()));
        st.args.insert("B".into(), Some("argb".into()));
        st.set_env("A", "env");
        st.set_env("C", "1");
        st.set_env("C", "2");
        assert_eq!(st.var("A").as_deref(), Some("env"));
        assert_eq!(st.var("B").as_deref(), Some("argb"));
        assert_eq!(st.config.env.clone().unwrap(), vec!["A=env", "C=2"]);
    }
}

/// What only BuildKit's Dockerfile frontend asks for (`POST /build` has
/// no such options).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `label:*`: set on the final image's config, with no step.
    pub image_labels: std::collections::BTreeMap<String, String>,
    /// `no-cache=<stage>,…`: the stages built without the cache.
    pub no_cache_stages: std::collections::HashSet<String>,
    /// Errors worded as BuildKit's (a failed RUN's `process "…" did not
    /// complete successfully: exit code: N`), not the classic builder's.
    pub buildkit_words: bool,
    /// Named contexts (`context:<name>`): the image ID that `FROM <name>`
    /// and `COPY --from=<name>` stand on, by lower-case name.
    pub named: std::collections::HashMap<String, String>,
}

impl Extras {
    /// The named context standing for `name` in a FROM or `COPY --from`:
    /// an image reference, or the ID of a local directory's image.
    pub(super) fn named_for(&self, name: &str) -> Option<&str> {
        if self.named.is_empty() {
            return None;
        }
        let by = |k: &str| self.named.get(&k.to_ascii_lowercase()).map(String::as_str);
        by(name).or_else(|| {
            let f = Reference::parse(name).ok()?.familiar();
            by(f.strip_suffix(":latest").unwrap_or(&f))
        })
    }
}
