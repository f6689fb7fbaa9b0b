//! The Dockerfile parser and Docker's word expansion.
//!
//! Written here rather than taken from a crate: the Rust Dockerfile parsers
//! parse the structure but none reproduces the part the classic builder's
//! behaviour depends on, moby's shell lexer (quote removal, the escape
//! token, `$VAR`/`${VAR:-…}` expansion applied per instruction argument),
//! nor its per-instruction argument grammars (`ENV k v` vs `ENV k=v …`,
//! JSON-or-shell forms, builder flags). This follows buildkit's
//! `frontend/dockerfile/parser` + `instructions` + `shell`, which moby's
//! classic builder uses too.
//!
//! Parsing gives [`Instruction`]s whose words are still unexpanded; the
//! executor expands them with the build's variables as it dispatches.

use std::collections::BTreeMap;

/// A parse error, with the line it is about (1-based; 0 = whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "dockerfile parse error: {}", self.message)
        } else {
            write!(
                f,
                "dockerfile parse error on line {}: {}",
                self.line, self.message
            )
        }
    }
}

type PResult<T> = Result<T, String>;

/// Exec (JSON array) or shell form of RUN, CMD, ENTRYPOINT, HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub srcs: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `None` for `HEALTHCHECK NONE`.
    pub cmd: Option<Args>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(Args),
    Cmd(Args),
    Entrypoint(Args),
    Shell(Vec<String>),
    /// (key, value) words, unexpanded.
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger instruction's text.
    Onbuild(String),
    Copy(CopySpec),
    Add(CopySpec),
    Maintainer(String),
}

impl Command {
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::From { .. } => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Shell(_) => "SHELL",
            Command::Env(_) => "ENV",
            Command::Label(_) => "LABEL",
            Command::Arg(_) => "ARG",
            Command::Expose(_) => "EXPOSE",
            Command::Workdir(_) => "WORKDIR",
            Command::User(_) => "USER",
            Command::Volume(_) => "VOLUME",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Onbuild(_) => "ONBUILD",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// First line of the instruction (1-based).
    pub line: usize,
    /// The logical line as written, continuations joined (what `Step N/M :`
    /// shows).
    pub original: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<String>,
}

fn is_directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let k = k.trim();
    if k.is_empty()
        || !k.starts_with(|c: char| c.is_ascii_alphabetic())
        || !k.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    Some((k.to_ascii_lowercase(), v.trim().to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing escape token (and blanks after it). Returns the line
/// and whether the instruction goes on.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s.to_string(), true),
        None => (line.to_string(), false),
    }
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut seen = std::collections::HashSet::new();
    let mut i = 0;
    // Parser directives: only at the very top, before anything else.
    while i < lines.len() {
        let Some((k, v)) = is_directive(lines[i]) else {
            break;
        };
        match k.as_str() {
            "escape" | "syntax" | "check" => {
                if !seen.insert(k.clone()) {
                    return Err(ParseError {
                        line: i + 1,
                        message: format!("only one {k} parser directive can be used"),
                    });
                }
                if k == "escape" {
                    escape = match v.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        other => {
                            return Err(ParseError {
                                line: i + 1,
                                message: format!(
                                    "invalid escape token '{other}' does not match ` or \\"
                                ),
                            })
                        }
                    };
                } else if k == "syntax" {
                    syntax = Some(v);
                }
            }
            // An unknown directive is a comment, and ends the directives.
            _ => break,
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    let mut warnings = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim_start();
        i += 1;
        if first.trim().is_empty() || first.starts_with('#') {
            continue;
        }
        let (mut logical, mut more) = trim_continuation(first, escape);
        let mut empty_continuation = false;
        while more && i < lines.len() {
            let l = lines[i];
            i += 1;
            if is_comment(l) {
                continue;
            }
            if l.trim().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, m) = trim_continuation(l, escape);
            logical.push_str(&part);
            more = m;
        }
        if empty_continuation {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in instruction starting on line {}",
                start + 1
            ));
        }
        let logical = logical.trim().to_string();
        if logical.is_empty() {
            continue;
        }
        let command = parse_instruction(&logical, escape, false).map_err(|message| ParseError {
            line: start + 1,
            message,
        })?;
        if let Some(h) = heredoc_in(&command, escape) {
            return Err(ParseError {
                line: start + 1,
                message: format!(
                    "heredocs are not supported by the classic builder ({h} in {}); use a RUN with a quoted multi-line string, or COPY a file",
                    command.keyword()
                ),
            });
        }
        instructions.push(Instruction {
            line: start + 1,
            original: logical,
            command,
        });
    }
    Ok(Dockerfile {
        escape,
        syntax,
        instructions,
        warnings,
    })
}

/// A heredoc marker (`<<EOF`, `<<-"EOF"`, `3<<EOF`) among the words of
/// RUN/COPY/ADD, as buildkit detects them.
fn heredoc_in(c: &Command, escape: char) -> Option<String> {
    let words: Vec<String> = match c {
        Command::Run(Args::Shell(s)) => split_shell_words(s, escape),
        Command::Copy(cs) | Command::Add(cs) => cs.srcs.clone(),
        _ => return None,
    };
    words.into_iter().find(|w| {
        let rest = w.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(name) = rest.strip_prefix("<<") else {
            return false;
        };
        let name = name.strip_prefix('-').unwrap_or(name);
        let name = name.trim_matches(|c| c == '"' || c == '\'');
        !name.is_empty() && !name.contains('<')
    })
}

/// Splits a shell-form string into words, quotes kept (for heredoc
/// detection only, as buildkit's raw-quote lexing).
fn split_shell_words(s: &str, escape: char) -> Vec<String> {
    parse_words(s, escape)
}

/// Splits one logical line into keyword, builder flags and the rest, and
/// parses the rest by the instruction's grammar.
pub fn parse_instruction(line: &str, escape: char, in_onbuild: bool) -> PResult<Command> {
    let line = line.trim();
    let (kw, rest) = match line.find(|c: char| c.is_whitespace()) {
        Some(p) => (&line[..p], line[p..].trim_start()),
        None => (line, ""),
    };
    let kw = kw.to_ascii_lowercase();
    let (flags, rest) = extract_flags(rest, escape)?;
    let rest = rest.trim();
    let flags = Flags::new(&kw, flags);
    let cmd = match kw.as_str() {
        "from" => {
            let platform = flags.take(&["platform"])?.remove("platform");
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (image, name) = match words.as_slice() {
                [image] => (image.to_string(), None),
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let name = name.to_ascii_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        ));
                    }
                    (image.to_string(), Some(name))
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Command::From {
                image,
                name,
                platform,
            }
        }
        "run" => {
            flags.none_requiring_buildkit()?;
            if rest.is_empty() {
                return Err("RUN requires at least one argument".into());
            }
            Command::Run(maybe_json(rest))
        }
        "cmd" => {
            flags.none()?;
            Command::Cmd(maybe_json(rest))
        }
        "entrypoint" => {
            flags.none()?;
            Command::Entrypoint(maybe_json(rest))
        }
        "shell" => {
            flags.none()?;
            match maybe_json(rest) {
                Args::Exec(v) if !v.is_empty() => Command::Shell(v),
                Args::Exec(_) => return Err("SHELL requires at least one argument".into()),
                Args::Shell(_) => {
                    return Err("SHELL requires the arguments to be in JSON form".into())
                }
            }
        }
        "env" | "label" => {
            flags.none()?;
            let up = kw.to_ascii_uppercase();
            let pairs = name_val(rest, &up, escape)?;
            if pairs.is_empty() {
                return Err(format!("{up} requires at least one argument"));
            }
            for (k, _) in &pairs {
                if k.is_empty() {
                    return Err(format!("{up} names can not be blank"));
                }
            }
            if kw == "env" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "arg" => {
            flags.none()?;
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let mut out = Vec::new();
            for w in words {
                match w.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
            }
            for (k, _) in &out {
                if k.is_empty() {
                    return Err("ARG names can not be blank".into());
                }
            }
            Command::Arg(out)
        }
        "expose" => {
            flags.none()?;
            let ports: Vec<String> = rest.split_whitespace().map(String::from).collect();
            if ports.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            Command::Expose(ports)
        }
        "workdir" | "user" | "stopsignal" | "maintainer" => {
            flags.none()?;
            let up = kw.to_ascii_uppercase();
            if rest.is_empty() {
                return Err(format!("{up} requires exactly one argument"));
            }
            let single = || -> PResult<String> {
                if rest.split_whitespace().count() != 1 && kw != "maintainer" {
                    return Err(format!("{up} requires exactly one argument"));
                }
                Ok(rest.to_string())
            };
            match kw.as_str() {
                // WORKDIR takes the rest of the line (paths may have spaces).
                "workdir" => Command::Workdir(rest.to_string()),
                "user" => Command::User(single()?),
                "stopsignal" => Command::StopSignal(single()?),
                _ => Command::Maintainer(rest.to_string()),
            }
        }
        "volume" => {
            flags.none()?;
            let list = match maybe_json(rest) {
                Args::Exec(v) => v,
                Args::Shell(s) => s.split_whitespace().map(String::from).collect(),
            };
            if list.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            if list.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Command::Volume(list)
        }
        "healthcheck" => {
            let mut f = flags.take(&[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ])?;
            let (word, tail) = match rest.find(char::is_whitespace) {
                Some(p) => (&rest[..p], rest[p..].trim_start()),
                None => (rest, ""),
            };
            let cmd = match word.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !tail.is_empty() {
                        return Err("HEALTHCHECK NONE takes no arguments".into());
                    }
                    if !f.is_empty() {
                        return Err("HEALTHCHECK NONE takes no options".into());
                    }
                    None
                }
                "CMD" => {
                    if tail.is_empty() {
                        return Err("Missing command after HEALTHCHECK CMD".into());
                    }
                    Some(maybe_json(tail))
                }
                other => return Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
            };
            Command::Healthcheck(Health {
                cmd,
                interval: f.remove("interval"),
                timeout: f.remove("timeout"),
                start_period: f.remove("start-period"),
                start_interval: f.remove("start-interval"),
                retries: f.remove("retries"),
            })
        }
        "onbuild" => {
            flags.none()?;
            if in_onbuild {
                return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
            }
            if rest.is_empty() {
                return Err("ONBUILD requires at least one argument".into());
            }
            let first = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            match first.as_str() {
                "onbuild" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "from" | "maintainer" => {
                    return Err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        first.to_ascii_uppercase()
                    ))
                }
                _ => {}
            }
            // The trigger must itself parse.
            parse_instruction(rest, escape, true)?;
            Command::Onbuild(rest.to_string())
        }
        "copy" | "add" => {
            let up = kw.to_ascii_uppercase();
            let allowed: &[&str] = if kw == "copy" {
                &["from", "chown", "chmod"]
            } else {
                &["chown", "chmod"]
            };
            let mut f = flags.take(allowed)?;
            let mut list = match maybe_json(rest) {
                Args::Exec(v) => v,
                Args::Shell(s) => s.split_whitespace().map(String::from).collect(),
            };
            if list.len() < 2 {
                return Err(format!(
                    "{up} requires at least two arguments, but only one was provided. Destination could not be determined."
                ));
            }
            let dest = list.pop().unwrap_or_default();
            let spec = CopySpec {
                srcs: list,
                dest,
                from: f.remove("from"),
                chown: f.remove("chown"),
                chmod: f.remove("chmod"),
            };
            if kw == "copy" {
                Command::Copy(spec)
            } else {
                Command::Add(spec)
            }
        }
        "" => return Err("empty instruction".into()),
        other => {
            return Err(format!(
                "unknown instruction: {}",
                other.to_ascii_uppercase()
            ))
        }
    };
    Ok(cmd)
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || "-_.".contains(x))
}

/// JSON array of strings → exec form; anything else → shell form.
fn maybe_json(rest: &str) -> Args {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return Args::Exec(v);
        }
    }
    Args::Shell(rest.to_string())
}

/// Builder flags by name; each instruction says which it accepts.
struct Flags {
    kw: String,
    list: Vec<(String, Option<String>)>,
}

const BUILDKIT_ONLY: &[&str] = &[
    "mount",
    "network",
    "security",
    "link",
    "parents",
    "exclude",
    "checksum",
    "keep-git-dir",
];

impl Flags {
    fn new(kw: &str, list: Vec<(String, Option<String>)>) -> Self {
        Self {
            kw: kw.to_string(),
            list,
        }
    }

    fn none(self) -> PResult<()> {
        self.take(&[]).map(|_| ())
    }

    fn none_requiring_buildkit(self) -> PResult<()> {
        if let Some((n, _)) = self.list.first() {
            return Err(format!(
                "the --{n} option requires BuildKit, which this daemon does not implement (it is a classic builder)"
            ));
        }
        Ok(())
    }

    fn take(self, allowed: &[&str]) -> PResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (n, v) in self.list {
            if !allowed.contains(&n.as_str()) {
                if BUILDKIT_ONLY.contains(&n.as_str()) {
                    return Err(format!(
                        "the --{n} option requires BuildKit, which this daemon does not implement (it is a classic builder)"
                    ));
                }
                return Err(format!(
                    "unknown flag: --{n} (for {})",
                    self.kw.to_ascii_uppercase()
                ));
            }
            let Some(v) = v else {
                return Err(format!("missing a value on flag: --{n}"));
            };
            if out.insert(n.clone(), v).is_some() {
                return Err(format!("duplicate flag specified: --{n}"));
            }
        }
        Ok(out)
    }
}

/// buildkit's `extractBuilderFlags`: leading `--name[=value]` words.
/// Builder flags as (name, value) pairs, `None` for a bare `--flag`.
type FlagList = Vec<(String, Option<String>)>;

fn extract_flags(rest: &str, escape: char) -> PResult<(FlagList, &str)> {
    let mut flags = Vec::new();
    let mut pos = 0;
    let b = rest.as_bytes();
    loop {
        while pos < b.len() && (b[pos] == b' ' || b[pos] == b'\t') {
            pos += 1;
        }
        if !rest[pos..].starts_with("--") {
            break;
        }
        // A word: up to unquoted whitespace.
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = rest[pos..].char_indices().peekable();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => word.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == escape => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                None if c.is_whitespace() => {
                    end = pos + i;
                    break;
                }
                None => word.push(c),
            }
        }
        if quote.is_some() {
            return Err("unterminated quote in a builder flag".into());
        }
        if word == "--" {
            pos = end;
            break;
        }
        let body = &word[2..];
        match body.split_once('=') {
            Some((n, v)) => flags.push((n.to_ascii_lowercase(), Some(v.to_string()))),
            None => flags.push((body.to_ascii_lowercase(), None)),
        }
        pos = end;
    }
    Ok((flags, &rest[pos.min(rest.len())..]))
}

/// buildkit's `parseWords`: whitespace-separated words with quotes and
/// escapes kept (they are removed later, by expansion).
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !in_word && quote.is_none() {
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            in_word = true;
        }
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == escape && q != '\'' {
                if i + 1 == chars.len() {
                    i += 1;
                    continue;
                }
                word.push(c);
                i += 1;
            }
            word.push(chars[i]);
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            blank_ok = false;
            in_word = false;
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            blank_ok = true;
        }
        if c == escape {
            if i + 1 == chars.len() {
                i += 1;
                continue;
            }
            word.push(c);
            i += 1;
        }
        word.push(chars[i]);
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// `ENV`/`LABEL`: `key value…` (old form, one pair) or `k=v k2=v2`.
fn name_val(rest: &str, kw: &str, escape: char) -> PResult<Vec<(String, String)>> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(vec![]);
    };
    if !first.contains('=') {
        let mut parts = rest.trim().splitn(2, char::is_whitespace);
        let k = parts.next().unwrap_or("").to_string();
        let v = parts.next().unwrap_or("").trim_start().to_string();
        if v.is_empty() {
            return Err(format!("{kw} must have two arguments"));
        }
        return Ok(vec![(k, v)]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Command {
        let df = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(df.instructions.len(), 1, "{src:?}");
        df.instructions[0].command.clone()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn instructions_table() {
        let cases: Vec<(&str, Command)> = vec![
            (
                "FROM busybox",
                Command::From {
                    image: "busybox".into(),
                    name: None,
                    platform: None,
                },
            ),
            (
                "from --platform=linux/amd64 busybox:1 AS Build",
                Command::From {
                    image: "busybox:1".into(),
                    name: Some("build".into()),
                    platform: Some("linux/amd64".into()),
                },
            ),
            ("RUN echo hi", Command::Run(Args::Shell("echo hi".into()))),
            (
                "RUN [\"echo\", \"a b\"]",
                Command::Run(Args::Exec(s(&["echo", "a b"]))),
            ),
            // Not a JSON array of strings: shell form.
            (
                "RUN [\"echo\", 1]",
                Command::Run(Args::Shell("[\"echo\", 1]".into())),
            ),
            (
                "RUN echo a \\\n  && echo b",
                Command::Run(Args::Shell("echo a   && echo b".into())),
            ),
            (
                "RUN echo a \\\n# a comment inside\n\n  b",
                Command::Run(Args::Shell("echo a   b".into())),
            ),
            ("CMD [\"sh\"]", Command::Cmd(Args::Exec(s(&["sh"])))),
            (
                "ENTRYPOINT top -b",
                Command::Entrypoint(Args::Shell("top -b".into())),
            ),
            (
                "SHELL [\"/bin/ash\", \"-c\"]",
                Command::Shell(s(&["/bin/ash", "-c"])),
            ),
            (
                "ENV A=1 B=\"two words\" C=x\\ y",
                Command::Env(kv(&[("A", "1"), ("B", "\"two words\""), ("C", "x\\ y")])),
            ),
            (
                "ENV OLD value with spaces",
                Command::Env(kv(&[("OLD", "value with spaces")])),
            ),
            (
                "LABEL a=b \"c d\"=e",
                Command::Label(kv(&[("a", "b"), ("\"c d\"", "e")])),
            ),
            (
                "ARG A B=2",
                Command::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))]),
            ),
            ("EXPOSE 80 443/udp", Command::Expose(s(&["80", "443/udp"]))),
            ("WORKDIR /a b", Command::Workdir("/a b".into())),
            ("USER app:grp", Command::User("app:grp".into())),
            ("VOLUME [\"/a\", \"/b\"]", Command::Volume(s(&["/a", "/b"]))),
            ("VOLUME /a /b", Command::Volume(s(&["/a", "/b"]))),
            ("STOPSIGNAL SIGUSR1", Command::StopSignal("SIGUSR1".into())),
            (
                "HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost",
                Command::Healthcheck(Health {
                    cmd: Some(Args::Shell("wget -q localhost".into())),
                    interval: Some("5s".into()),
                    timeout: None,
                    start_period: None,
                    start_interval: None,
                    retries: Some("3".into()),
                }),
            ),
            (
                "HEALTHCHECK NONE",
                Command::Healthcheck(Health {
                    cmd: None,
                    interval: None,
                    timeout: None,
                    start_period: None,
                    start_interval: None,
                    retries: None,
                }),
            ),
            (
                "ONBUILD RUN echo triggered",
                Command::Onbuild("RUN echo triggered".into()),
            ),
            (
                "COPY --from=b --chown=1:2 --chmod=0755 /a /b /dest/",
                Command::Copy(CopySpec {
                    srcs: s(&["/a", "/b"]),
                    dest: "/dest/".into(),
                    from: Some("b".into()),
                    chown: Some("1:2".into()),
                    chmod: Some("0755".into()),
                }),
            ),
            (
                "ADD [\"a b\", \"/c\"]",
                Command::Add(CopySpec {
                    srcs: s(&["a b"]),
                    dest: "/c".into(),
                    from: None,
                    chown: None,
                    chmod: None,
                }),
            ),
        ];
        for (src, want) in cases {
            assert_eq!(one(src), want, "{src:?}");
        }
    }

    #[test]
    fn directives_and_escape() {
        let df =
            parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN dir `\n  c:\\\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(
            df.instructions[1].command,
            Command::Run(Args::Shell("dir   c:\\".into()))
        );
        // A directive after an instruction is a comment.
        let df = parse("FROM x\n# escape=`\nRUN a \\\n b").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions.len(), 2);
        assert!(parse("# escape=x\nFROM x").is_err());
        assert!(parse("# escape=`\n# escape=`\nFROM x").is_err());
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases = [
            ("FROM x\nRUNN echo", 2, "unknown instruction: RUNN"),
            ("FROM x\n\nENV\n", 3, "ENV requires at least one argument"),
            ("FROM x\nENV A", 2, "ENV must have two arguments"),
            ("FROM a b", 1, "FROM requires either one or three arguments"),
            ("FROM a AS 1x", 1, "invalid name for build stage"),
            ("FROM x\nCOPY a", 2, "COPY requires at least two arguments"),
            (
                "FROM x\nSHELL sh -c",
                2,
                "SHELL requires the arguments to be in JSON form",
            ),
            (
                "FROM x\nRUN --mount=type=cache,target=/x true",
                2,
                "requires BuildKit",
            ),
            ("FROM x\nCOPY --nope=1 a b", 2, "unknown flag: --nope"),
            ("FROM x\nONBUILD ONBUILD RUN x", 2, "Chaining ONBUILD"),
            (
                "FROM x\nONBUILD FROM y",
                2,
                "isn't allowed as an ONBUILD trigger",
            ),
            (
                "FROM x\nRUN <<EOF\necho hi\nEOF",
                2,
                "heredocs are not supported",
            ),
            (
                "FROM x\nCOPY <<EOF /f\nhi\nEOF",
                2,
                "heredocs are not supported",
            ),
            ("FROM x\nHEALTHCHECK BOGUS x", 2, "Unknown type"),
            ("FROM x\nLABEL a=b c", 2, "can't find = in"),
        ];
        for (src, line, msg) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.line, line, "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
            assert!(e
                .to_string()
                .starts_with(&format!("dockerfile parse error on line {line}: ")));
        }
        // Here-strings and a `<<` inside quotes are not heredocs.
        assert!(parse("FROM x\nRUN cat <<< hi").is_ok());
        assert!(parse("FROM x\nRUN echo '<<EOF'").is_ok());
    }

    #[test]
    fn words_keep_quotes_for_expansion() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f' g\\ h", '\\'),
            s(&["a=\"b c\"", "d='e f'", "g\\ h"])
        );
        assert_eq!(parse_words("  x  ", '\\'), s(&["x"]));
        assert_eq!(parse_words("\"\"", '\\'), s(&["\"\""]));
    }
}
