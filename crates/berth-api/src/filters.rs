//! The `filters` query parameter: URL-decoded JSON of `{"key":{"value":true}}`
//! (or the legacy `{"key":["value"]}` form), as moby's `filters.Args`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why a `filters` parameter or `--filter` flag was refused; the text is Docker's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    /// A key the endpoint does not accept.
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
    /// Not the JSON wire form, or a `--filter` flag without `=`.
    #[error("invalid filters format: {0}")]
    Malformed(String),
    /// A value the key cannot take (say, `dangling=maybe`).
    #[error("invalid filter '{key}={value}'")]
    BadValue {
        /// The filter's key.
        key: String,
        /// The refused value.
        value: String,
    },
}

/// Parsed filters: each key with its set of values, as moby's `filters.Args`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// No filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the wire form; an empty string is "no filters".
    pub fn parse(raw: &str) -> Result<Self, FilterError> {
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| FilterError::Malformed(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| FilterError::Malformed("expected a JSON object".into()))?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let mut set = BTreeSet::new();
            match vals {
                serde_json::Value::Object(m) => {
                    for (val, on) in m {
                        if on.as_bool().unwrap_or(false) {
                            set.insert(val.clone());
                        }
                    }
                }
                serde_json::Value::Array(a) => {
                    for val in a {
                        let s = val.as_str().ok_or_else(|| {
                            FilterError::Malformed(format!("filter {k} has a non-string value"))
                        })?;
                        set.insert(s.to_string());
                    }
                }
                _ => return Err(FilterError::Malformed(format!("filter {k} is not a map"))),
            }
            out.insert(k.clone(), set);
        }
        Ok(Self(out))
    }

    /// Serialises to the modern wire form.
    pub fn to_json(&self) -> String {
        let m: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .0
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
    }

    /// Adds one value for `key` (moby's `Args.Add`).
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.entry(key.into()).or_default().insert(value.into());
    }

    /// Parses `key=value` as the CLI's `--filter` flag does.
    pub fn add_flag(&mut self, flag: &str) -> Result<(), FilterError> {
        let (k, v) = flag.split_once('=').ok_or_else(|| {
            FilterError::Malformed(format!(
                "bad format of filter (expected name=value): {flag}"
            ))
        })?;
        self.add(k.trim().to_lowercase(), v.to_string());
        Ok(())
    }

    /// True when no filter is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Rejects keys the endpoint does not know, as Docker does.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), FilterError> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(FilterError::UnknownKey(k.clone()));
            }
        }
        Ok(())
    }

    /// True when `key` is given (moby's `Args.Contains`).
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values given for `key`, sorted; none when absent (moby's `Args.Get`).
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .get(key)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    /// True when the key is absent or one of its values equals `value`.
    pub fn exact_match(&self, key: &str, value: &str) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vs) => vs.is_empty() || vs.contains(value),
        }
    }

    /// True when the key is absent or one of its values is a prefix of
    /// `value` (moby's `FuzzyMatch`, used for IDs).
    pub fn prefix_match(&self, key: &str, value: &str) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vs) => vs.is_empty() || vs.iter().any(|v| value.starts_with(v.as_str())),
        }
    }

    /// True when the key is absent or one of its values occurs in `value`
    /// (moby's `Match`, used for names).
    pub fn substring_match(&self, key: &str, value: &str) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vs) => vs.is_empty() || vs.iter().any(|v| value.contains(v.as_str())),
        }
    }

    /// Label filters: every `k` or `k=v` given must hold (moby's `MatchKVList`).
    pub fn match_labels(&self, key: &str, labels: Option<&HashMap<String, String>>) -> bool {
        let Some(wanted) = self.0.get(key) else {
            return true;
        };
        let empty = HashMap::new();
        let labels = labels.unwrap_or(&empty);
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(w.as_str()),
        })
    }

    /// A boolean filter such as `dangling=true`; `None` when absent.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(vs) = self.0.get(key) else {
            return Ok(None);
        };
        let mut result = None;
        for v in vs {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(FilterError::BadValue {
                        key: key.into(),
                        value: v.clone(),
                    })
                }
            };
            if result.is_some_and(|r| r != b) {
                return Err(FilterError::BadValue {
                    key: key.into(),
                    value: v.clone(),
                });
            }
            result = Some(b);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_wire_forms() {
        let f = Filters::parse(r#"{"type":{"container":true},"label":["a=b"]}"#).unwrap();
        assert!(f.exact_match("type", "container"));
        assert!(!f.exact_match("type", "image"));
        assert!(f.exact_match("event", "anything"));
        assert_eq!(f.get("label").collect::<Vec<_>>(), vec!["a=b"]);
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse("{").is_err());
    }

    #[test]
    fn validates_keys_like_docker() {
        let f = Filters::parse(r#"{"nope":{"x":true}}"#).unwrap();
        assert_eq!(
            f.validate(&["type"]).unwrap_err().to_string(),
            "invalid filter 'nope'"
        );
    }

    #[test]
    fn matches_labels_and_bools() {
        let f =
            Filters::parse(r#"{"label":{"a=b":true,"c":true},"dangling":{"true":true}}"#).unwrap();
        let mut l = HashMap::new();
        l.insert("a".to_string(), "b".to_string());
        assert!(!f.match_labels("label", Some(&l)));
        l.insert("c".to_string(), "".to_string());
        assert!(f.match_labels("label", Some(&l)));
        assert_eq!(f.get_bool("dangling").unwrap(), Some(true));
        assert_eq!(f.get_bool("other").unwrap(), None);
    }

    #[test]
    fn round_trips() {
        let mut f = Filters::new();
        f.add_flag("name=web").unwrap();
        assert_eq!(f.to_json(), r#"{"name":{"web":true}}"#);
        assert_eq!(Filters::parse(&f.to_json()).unwrap(), f);
    }
}
