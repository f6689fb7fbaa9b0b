//! Wire shapes: which keys dockerd always emits in a JSON answer, per API
//! version.
//!
//! The wire types are bollard-stubs models whose `Option` fields vanish when
//! `None`, while dockerd's Go structs emit every field without `omitempty`,
//! with its zero value (`""`, `0`, `false`, `null` for nil slices, maps and
//! pointers, nested structs filled). A [`Shape`] describes those fields for
//! one response type; [`Shape::to_vec`] serializes an answer with the missing
//! ones added and the ones the negotiated version does not have dropped. The
//! engine still fills every real value: a shape only supplies defaults.
//!
//! A shape is written as lines of `PATH ZERO [>=X.Y] [<X.Y]`:
//! - `PATH` in the golden key-path notation: keys joined with `.`, `[]` for
//!   every element of an array, `{}` for every entry of a map with dynamic
//!   keys (`NetworkSettings.Networks.{}.Aliases`, `[].Id` for a list).
//! - `ZERO`: `""`, `0`, `false`, `null`, `[]`, `{}` (a struct: inserted,
//!   then its own fields filled), a quoted string without spaces, `-`
//!   (never inserted; the line only carries a version range, or gives a
//!   path to nested lines) or `omitempty` (never inserted, and dropped when
//!   it holds its type's zero value, as Go's `omitempty` does).
//! - `>=X.Y`: the key exists from that version on; `<X.Y`: up to (and not
//!   including) that version. Outside its range the key is removed.
//! - `omitempty>=X.Y`: from that version on the field is `omitempty`.
//! - `emptynull` (or `emptynull<X.Y`, below that version only): an empty
//!   list or map is written as `null` — Go's nil, which the wire types
//!   cannot tell from empty.
//!
//! `#` starts a comment. Shared parts (a `HostConfig`, an endpoint) are
//! separate texts mounted under a prefix (see [`Shape::new`]).

mod ser;

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::ApiVersion;

/// The value a missing field takes: its Go zero value, or a fixed string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Zero {
    Text(String),
    Num,
    Bool,
    Null,
    EmptyList,
    Struct,
}

impl Zero {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "0" => Zero::Num,
            "false" => Zero::Bool,
            "null" => Zero::Null,
            "[]" => Zero::EmptyList,
            "{}" => Zero::Struct,
            _ => {
                let t = s.strip_prefix('"')?.strip_suffix('"')?;
                Zero::Text(t.to_string())
            }
        })
    }

    fn value(&self) -> Value {
        match self {
            Zero::Text(t) => Value::String(t.clone()),
            Zero::Num => Value::from(0),
            Zero::Bool => Value::Bool(false),
            Zero::Null => Value::Null,
            Zero::EmptyList => Value::Array(Vec::new()),
            Zero::Struct => Value::Object(Map::new()),
        }
    }
}

/// Go's `omitempty` test: false, 0, "", nil, or an empty slice or map.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

/// One key (or the elements/entries below one).
#[derive(Debug, Default)]
struct Node {
    zero: Option<Zero>,
    since: Option<ApiVersion>,
    until: Option<ApiVersion>,
    /// From this version on the field is `omitempty`.
    omit_empty: Option<ApiVersion>,
    /// Below this version an empty list or map is written as `null`.
    empty_null: Option<ApiVersion>,
    fields: Vec<(String, Node)>,
    /// `{}`: applied to every entry of a map.
    entries: Option<Box<Node>>,
    /// `[]`: applied to every element of an array.
    elems: Option<Box<Node>>,
}

impl Node {
    fn in_version(&self, v: ApiVersion) -> bool {
        self.since.is_none_or(|s| v >= s) && self.until.is_none_or(|u| v < u)
    }

    fn field(&mut self, key: &str) -> &mut Node {
        let i = match self.fields.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.fields.push((key.to_string(), Node::default()));
                self.fields.len() - 1
            }
        };
        &mut self.fields[i].1
    }

    /// The node at `path` (golden notation), created as needed.
    fn at(&mut self, path: &str) -> &mut Node {
        let mut n = self;
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            let (key, mut arrays) = (seg.trim_end_matches("[]"), 0);
            let mut rest = &seg[key.len()..];
            while let Some(r) = rest.strip_prefix("[]") {
                arrays += 1;
                rest = r;
            }
            n = match key {
                "" => n,
                "{}" => n.entries.get_or_insert_with(Default::default),
                k => n.field(k),
            };
            for _ in 0..arrays {
                n = n.elems.get_or_insert_with(Default::default);
            }
        }
        n
    }
}

/// The always-emitted fields of one response type; built on first use.
pub struct Shape {
    parts: &'static [(&'static str, &'static str)],
    tree: OnceLock<Node>,
}

/// A malformed shape line (a bug in a shape text, caught by the tests).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("shape line {line:?}: {why}")]
pub struct BadShape {
    /// The offending line, without its comment.
    pub line: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Shape {
    /// `parts`: (prefix, text) pairs; each text's paths are taken relative to
    /// its prefix, so one text (say, an endpoint's) serves several types.
    pub const fn new(parts: &'static [(&'static str, &'static str)]) -> Self {
        Self {
            parts,
            tree: OnceLock::new(),
        }
    }

    fn build(parts: &[(&str, &str)]) -> Result<Node, BadShape> {
        let mut root = Node::default();
        for (prefix, text) in parts {
            for raw in text.lines() {
                let line = raw.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let bad = |why| BadShape {
                    line: line.to_string(),
                    why,
                };
                let mut words = line.split_whitespace();
                let path = words.next().ok_or_else(|| bad("no path"))?;
                let zero = words.next().ok_or_else(|| bad("no zero value"))?;
                let full = match (prefix.is_empty(), path) {
                    (true, p) => p.to_string(),
                    (false, p) if p.starts_with('[') => format!("{prefix}{p}"),
                    (false, p) => format!("{prefix}.{p}"),
                };
                let node = root.at(&full);
                match zero {
                    "-" => {}
                    "omitempty" => node.omit_empty = Some(ApiVersion::new(0, 0)),
                    z => node.zero = Some(Zero::parse(z).ok_or_else(|| bad("bad zero value"))?),
                }
                for w in words {
                    if w == "emptynull" {
                        node.empty_null = Some(ApiVersion::new(u32::MAX, u32::MAX));
                        continue;
                    }
                    let (slot, v) = if let Some(v) = w.strip_prefix("emptynull<") {
                        (&mut node.empty_null, v)
                    } else if let Some(v) = w.strip_prefix("omitempty>=") {
                        (&mut node.omit_empty, v)
                    } else if let Some(v) = w.strip_prefix(">=") {
                        (&mut node.since, v)
                    } else if let Some(v) = w.strip_prefix('<') {
                        (&mut node.until, v)
                    } else {
                        return Err(bad("unknown qualifier"));
                    };
                    *slot = Some(v.parse().map_err(|_| bad("bad version"))?);
                }
            }
        }
        Ok(root)
    }

    /// Checks the shape texts (`to_vec` builds them lazily).
    pub fn check(&self) -> Result<(), BadShape> {
        Self::build(self.parts).map(|_| ())
    }

    fn tree(&'static self) -> &'static Node {
        self.tree.get_or_init(|| {
            // The texts are constants checked by unit tests; a broken one
            // shapes nothing rather than failing requests.
            Self::build(self.parts).unwrap_or_default()
        })
    }

    /// Serializes `v` as JSON in the shape dockerd gives at `version`.
    pub fn to_vec<T: serde::Serialize + ?Sized>(
        &'static self,
        v: &T,
        version: ApiVersion,
    ) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&self.shaped(v, version))
    }

    /// Brings a JSON value to the shape dockerd gives at `version`.
    pub fn apply(&'static self, v: &mut Value, version: ApiVersion) {
        if let Ok(out) = serde_json::to_value(self.shaped(&*v, version)) {
            *v = out;
        }
    }

    fn shaped<'a, T: ?Sized>(&'static self, v: &'a T, ver: ApiVersion) -> ser::Shaped<'a, T> {
        ser::Shaped {
            v,
            node: Some(self.tree()),
            ver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V41: ApiVersion = ApiVersion::new(1, 41);
    const V50: ApiVersion = ApiVersion::new(1, 50);

    const EP: &str = "
        Aliases null
        IPAMConfig null
        NetworkID \"\"
        GwPriority 0 >=1.48
        DNSNames null >=1.44
    ";
    static T: Shape = Shape::new(&[
        (
            "",
            "
            Id \"\"
            Config {}
            Config.Env null
            Config.Tty false
            State {}          # a struct: filled when missing
            State.Pid 0
            Health null
            Gone 0 <1.44      # removed in 1.44
            Size -  >=1.42    # absent before 1.42
            Note omitempty
            Later \"\" omitempty>=1.44
            List[].Name \"\"
            ",
        ),
        ("NetworkSettings.Networks.{}", EP),
    ]);

    #[test]
    fn fills_zero_values_and_structs() {
        let mut v = json!({"Id": "x", "Config": {"Env": ["A=1"]}});
        T.apply(&mut v, V50);
        assert_eq!(
            v,
            json!({"Id": "x", "Config": {"Env": ["A=1"], "Tty": false},
                   "State": {"Pid": 0}, "Health": null})
        );
    }

    #[test]
    fn keeps_real_values_and_null_parents() {
        let mut v = json!({"Id": "x", "Config": null, "State": {"Pid": 7}, "Health": {"S": 1}});
        T.apply(&mut v, V50);
        assert_eq!(v["Config"], Value::Null);
        assert_eq!(v["State"], json!({"Pid": 7}));
        assert_eq!(v["Health"], json!({"S": 1}));
    }

    #[test]
    fn versions_add_and_remove_keys() {
        let mut old = json!({"Size": 3, "NetworkSettings": {"Networks": {"a": {"GwPriority": 5}}}});
        T.apply(&mut old, V41);
        assert_eq!(old["Gone"], json!(0));
        assert_eq!(old.get("Size"), None);
        assert_eq!(
            old["NetworkSettings"]["Networks"]["a"],
            json!({"Aliases": null, "IPAMConfig": null, "NetworkID": ""})
        );
        let mut new = json!({"Size": 3, "Gone": 1, "NetworkSettings": {"Networks": {"a": {}}}});
        T.apply(&mut new, V50);
        assert_eq!(new.get("Gone"), None);
        assert_eq!(new["Size"], json!(3));
        assert_eq!(
            new["NetworkSettings"]["Networks"]["a"]["GwPriority"],
            json!(0)
        );
        assert_eq!(
            new["NetworkSettings"]["Networks"]["a"]["DNSNames"],
            Value::Null
        );
    }

    #[test]
    fn omitempty_drops_only_zero_values() {
        let mut v = json!({"Note": "", "Later": ""});
        T.apply(&mut v, V50);
        assert!(v.get("Note").is_none() && v.get("Later").is_none());
        let mut v = json!({"Note": "n"});
        T.apply(&mut v, V41);
        assert_eq!(v["Note"], json!("n"));
        assert_eq!(v["Later"], json!(""));
    }

    #[test]
    fn arrays_shape_every_element() {
        let mut v = json!({"List": [{}, {"Name": "n"}]});
        T.apply(&mut v, V50);
        assert_eq!(v["List"], json!([{"Name": ""}, {"Name": "n"}]));
        static L: Shape = Shape::new(&[("[]", "Id \"\"\nSub[][].X 0")]);
        let mut l = json!([{"Sub": [[{}]]}, {"Id": "b"}]);
        L.apply(&mut l, V50);
        assert_eq!(l, json!([{"Id": "", "Sub": [[{"X": 0}]]}, {"Id": "b"}]));
    }

    #[test]
    fn bad_lines_are_reported() {
        static B: Shape = Shape::new(&[("", "Id 5")]);
        assert!(B.check().is_err());
        static Q: Shape = Shape::new(&[("", "Id \"\" >1.4")]);
        assert!(Q.check().is_err());
        assert!(T.check().is_ok());
    }
}
