//! Output the way the docker CLI lays it out: Go templates (`--format`),
//! `table` directives, tab-aligned columns, and human units.

use std::collections::HashMap;

use berth_api::{duration, units};

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Number, Value};
use serde_json::Value as Json;

/// serde_json → gtmpl values.
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(Number::from(i))
            } else if let Some(u) = n.as_u64() {
                Value::Number(Number::from(u))
            } else {
                Value::Number(Number::from(n.as_f64().unwrap_or(0.0)))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        // Maps, not objects: a missing key is `<no value>`, as in Go's
        // templates over decoded JSON, rather than an error.
        Json::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil | Value::NoValue => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64().map(Json::from).unwrap_or(Json::Null)
            }
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Object(o) | Value::Map(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(&o[k])))
                    .collect(),
            )
        }
        Value::Function(_) => Json::Null,
    }
}

fn arg_str(args: &[Value], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Ok(v.to_string()),
        None => Err(FuncError::AtLeastXArgs("function".into(), i + 1)),
    }
}

fn f_json(args: &[Value]) -> Result<Value, FuncError> {
    let v = args.first().cloned().unwrap_or(Value::Nil);
    Ok(Value::String(
        serde_json::to_string(&to_json(&v)).unwrap_or_default(),
    ))
}
fn f_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0)?.to_uppercase()))
}
fn f_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(arg_str(args, 0)?.to_lowercase()))
}
fn f_title(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let mut c = s.chars();
    Ok(Value::String(match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }))
}
fn f_join(args: &[Value]) -> Result<Value, FuncError> {
    let sep = arg_str(args, 1)?;
    let items: Vec<String> = match args.first() {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                o => o.to_string(),
            })
            .collect(),
        Some(Value::Nil) | None => vec![],
        Some(v) => vec![v.to_string()],
    };
    Ok(Value::String(items.join(&sep)))
}
fn f_split(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let sep = arg_str(args, 1)?;
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.into()))
            .collect(),
    ))
}
fn f_truncate(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let n = match args.get(1) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        _ => return Err(FuncError::AtLeastXArgs("truncate".into(), 2)),
    };
    Ok(Value::String(s.chars().take(n).collect()))
}
fn f_pad(args: &[Value]) -> Result<Value, FuncError> {
    let s = arg_str(args, 0)?;
    let n = |i| match args.get(i) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        _ => 0,
    };
    Ok(Value::String(format!(
        "{}{}{}",
        " ".repeat(n(1)),
        s,
        " ".repeat(n(2))
    )))
}
/// `len`, also of maps (gtmpl's only counts objects).
fn f_len(args: &[Value]) -> Result<Value, FuncError> {
    let n = match args.first() {
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(o)) | Some(Value::Map(o)) => o.len(),
        Some(Value::Nil) => 0,
        Some(v) => return Err(FuncError::Generic(format!("len of {v}"))),
        None => return Err(FuncError::ExactlyXArgs("len".into(), 1)),
    };
    Ok(Value::Number(Number::from(n as u64)))
}

fn f_println(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            o => o.to_string(),
        })
        .collect();
    Ok(Value::String(parts.join(" ") + "\n"))
}

/// How Go's templates print a value (`fmt.Print`): slices as `[a b]`,
/// maps as `map[k:v]` with sorted keys, nil as `<nil>`.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil => "<nil>".into(),
        Value::NoValue => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(o) | Value::Map(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_print(&o[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Function(_) => String::new(),
    }
}

fn f_goprint(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_print(
        args.first().unwrap_or(&Value::NoValue),
    )))
}

/// gtmpl prints arrays and maps with Rust's `Debug`; so every action that
/// prints its value gets `| __goprint` appended to print it as Go does.
/// Control actions (`if`, `range`, `end`, …), declarations and comments
/// print nothing and stay as they are.
fn go_printing(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 16);
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let inner_start = start + 2;
        // The closing `}}`, skipping quoted strings.
        let bytes = rest.as_bytes();
        let mut i = inner_start;
        let mut quote: Option<u8> = None;
        let mut end = None;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) => {
                    if b == b'\\' && q != b'`' {
                        i += 1;
                    } else if b == q {
                        quote = None;
                    }
                }
                None if b == b'"' || b == b'`' || b == b'\'' => quote = Some(b),
                None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => {
                    end = Some(i);
                    break;
                }
                None => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            // Unterminated: leave it for the parser to report.
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[inner_start..end];
        let (lead, core, trail) = {
            let lead = if inner.starts_with("- ") { "- " } else { "" };
            let t = &inner[lead.len()..];
            let trail = if t.ends_with(" -") { " -" } else { "" };
            (lead, &t[..t.len() - trail.len()], trail)
        };
        let word = core.split_whitespace().next().unwrap_or("");
        let control = matches!(
            word,
            "if" | "else"
                | "end"
                | "range"
                | "with"
                | "define"
                | "template"
                | "block"
                | "break"
                | "continue"
        ) || core.trim_start().starts_with("/*")
            || core.trim().is_empty()
            || (word.starts_with('$')
                && (core.contains(":=") || core.split_whitespace().nth(1) == Some("=")));
        out.push_str("{{");
        if control {
            out.push_str(inner);
        } else {
            out.push_str(&format!("{lead}({}) | __goprint{trail}", core.trim()));
        }
        out.push_str("}}");
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A parsed `--format` template with docker's helper functions.
pub struct Tmpl {
    t: Template,
    /// `table` directive: print a header row and align columns.
    pub table: bool,
    header: Option<String>,
}

impl Tmpl {
    /// `headers` maps a field name (`ID`) to its column title (`CONTAINER ID`).
    pub fn parse(format: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        // `--format json`: every object as one line of JSON, as docker's
        // formatter turns that key into `{{json .}}`.
        let format = if format == "json" {
            "{{json .}}"
        } else {
            format
        };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start().to_string())
            }
            _ => (false, format.to_string()),
        };
        let body = unescape(&body);
        let mut t = Template::default();
        t.add_funcs(&[
            ("json", f_json as gtmpl::Func),
            ("upper", f_upper),
            ("lower", f_lower),
            ("title", f_title),
            ("join", f_join),
            ("split", f_split),
            ("truncate", f_truncate),
            ("pad", f_pad),
            ("println", f_println),
            ("__goprint", f_goprint),
            ("len", f_len),
        ]);
        t.parse(go_printing(&body))
            .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        let header = table.then(|| header_row(&body, headers));
        Ok(Self { t, table, header })
    }

    pub fn render(&self, data: &Json) -> anyhow::Result<String> {
        let ctx = Context::from(to_value(data));
        self.t.render(&ctx).map_err(|e| match e {
            // gtmpl would print the whole object; Go names the key.
            gtmpl::error::ExecError::NoFiledFor(k, _) => {
                anyhow::anyhow!("template: executing: map has no entry for key {k:?}")
            }
            e => anyhow::anyhow!("template: {e}"),
        })
    }

    /// Renders every item; table output is aligned like docker's tabwriter.
    pub fn render_all(&self, items: &[Json]) -> anyhow::Result<String> {
        let mut lines = Vec::new();
        if let Some(h) = &self.header {
            lines.push(h.clone());
        }
        for it in items {
            lines.push(self.render(it)?);
        }
        if self.table {
            Ok(tabwrite(&lines))
        } else {
            Ok(lines.into_iter().map(|l| l + "\n").collect())
        }
    }
}

/// `\t` and `\n` typed literally on the command line mean tab and newline.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// Replaces each `{{.Field}}` with the field's column title.
fn header_row(body: &str, headers: &[(&str, &str)]) -> String {
    let map: HashMap<&str, &str> = headers.iter().copied().collect();
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + end].trim();
        let field = inner
            .split_whitespace()
            .find_map(|w| w.strip_prefix('.'))
            .unwrap_or("")
            .split('.')
            .next()
            .unwrap_or("");
        let title = map
            .get(field)
            .map(|s| s.to_string())
            .unwrap_or_else(|| field.to_uppercase());
        out.push_str(&title);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Go's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`, as the docker CLI uses.
pub fn tabwrite(lines: &[String]) -> String {
    tabwrite_min(lines, 10)
}

/// Go's `tabwriter.NewWriter(w, min, 1, 3, ' ', 0)` (`top` uses 20).
pub fn tabwrite_min(lines: &[String], min: usize) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count() + 3).max(min);
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.push_str(&" ".repeat(widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// docker's `units.HumanSizeWithPrecision(n, 3)`: decimal units.
pub fn human_size(n: i64) -> String {
    units::human_size_with_precision(n as f64, 3)
}

/// docker's `units.HumanSize` (four significant digits), used by `system df`.
pub fn human_size4(n: i64) -> String {
    units::human_size(n as f64)
}

/// fvbommel/sortorder's `NaturalLess` (docker sorts `network ls` and
/// `port` output with it): digit runs compare as numbers and sort before
/// other characters.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (d1, d2) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if d1 != d2 {
            return if d1 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !d1 {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz1, nz2) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (n1, n2) = (&a[nz1..i], &b[nz2..j]);
        if n1.len() != n2.len() {
            return n1.len().cmp(&n2.len());
        }
        if n1 != n2 {
            return n1.cmp(n2);
        }
        // Equal numbers: fewer leading zeros first.
        if nz1 != nz2 {
            return nz1.cmp(&nz2);
        }
    }
    // Identical so far: the one that goes on sorts last.
    a.len().cmp(&b.len())
}

/// Parses docker's `--since`/`--until` values: RFC 3339 times, unix
/// `secs[.nanos]`, or Go durations relative to `now` ("10m", "1h30m").
pub fn parse_time(value: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S") {
        let t = t.and_utc();
        return Ok(format!("{}.{:09}", t.timestamp(), 0));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
        return Ok(format!("{}.{:09}", t.timestamp(), 0));
    }
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match value.split_once('.') {
        None if is_num(value) => return Ok(value.to_string()),
        Some((a, b)) if is_num(a) && is_num(b) => return Ok(value.to_string()),
        _ => {}
    }
    let d = duration::parse(value)?;
    let t = now - chrono::Duration::nanoseconds(d);
    Ok(format!(
        "{}.{:09}",
        t.timestamp(),
        t.timestamp_subsec_nanos()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_docker_units() {
        assert_eq!(human_size(1_982_368), "1.98MB");
        assert_eq!(human_size4(1_982_368), "1.982MB");
    }

    #[test]
    fn natural_order_as_sortorder() {
        let mut v = vec!["net10", "net2", "bridge", "net02", "a1b", "host", "Z", "1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["1", "Z", "a1b", "bridge", "host", "net2", "net02", "net10"]
        );
    }

    #[test]
    fn templates_and_tables() {
        let t = Tmpl::parse("{{.Name}} {{json .Labels}} {{upper .Name}}", &[]).unwrap();
        let out = t
            .render(&serde_json::json!({"Name": "web", "Labels": {"a": "b"}}))
            .unwrap();
        assert_eq!(out, r#"web {"a":"b"} WEB"#);
        let t = Tmpl::parse(
            "table {{.ID}}\t{{.Name}}",
            &[("ID", "CONTAINER ID"), ("Name", "NAMES")],
        )
        .unwrap();
        let out = t
            .render_all(&[serde_json::json!({"ID": "abc", "Name": "web"})])
            .unwrap();
        assert_eq!(out, "CONTAINER ID   NAMES\nabc            web\n");
    }

    #[test]
    fn values_print_as_go_does() {
        let v = serde_json::json!({"Cmd": ["echo", "a b"], "L": {"b": 2, "a": "x"}, "N": null, "E": []});
        let t = Tmpl::parse(
            "{{.Cmd}} {{.L}} {{.N}} {{.E}} {{ .Missing }} {{len .L}}{{if .Cmd}} yes{{end}}{{range .Cmd}},{{.}}{{end}} {{index .Cmd 1}} {{- \" \\\"}}\" -}} {{$x := .L.a}}{{$x}}",
            &[],
        )
        .unwrap();
        assert_eq!(
            t.render(&v).unwrap(),
            "[echo a b] map[a:x b:2] <nil> [] <no value> 2 yes,echo,a b a b \"}}x"
        );
    }

    #[test]
    fn times_parse_like_docker() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:10Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_time("10s", now).unwrap(), "1767225600.000000000");
        assert_eq!(parse_time("1767225600", now).unwrap(), "1767225600");
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z", now).unwrap(),
            "1767225600.000000000"
        );
        assert_eq!(
            parse_time("abc", now).unwrap_err().to_string(),
            "time: invalid duration \"abc\""
        );
    }
}
