//! `.dockerignore` files and Docker's path patterns, as moby's
//! `patternmatcher` and `ignorefile` packages define them; shared by the
//! daemon (which drops an excluded `Dockerfile`/`.dockerignore` from a
//! build context) and the CLI (which leaves excluded files out of the
//! context it sends). Also Go's `filepath.Match` for `COPY` wildcards.
//!
//! Rules: one pattern a line, `#` comments and blank lines skipped, a
//! leading `!` makes an exception, patterns are cleaned (`a/./b` → `a/b`)
//! and a leading `/` dropped. `*` matches within one path component, `?`
//! one character, `[…]` a class, `**` any number of components (even
//! none). The last pattern that matches a path (or one of its parent
//! directories) decides.

use crate::pattern::{compile, matches, matches_in, Dialect, Tok};

/// `filepath.Match` as berth reads `COPY` sources: the whole `name`
/// against `pattern`, in the loose dialect (see [`crate::pattern`]).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    matches_in(Dialect::Loose { double_star: false }, pattern, name)
}

/// True when `s` has glob meta characters (`*`, `?`, `[`).
pub fn has_wildcards(s: &str) -> bool {
    s.chars().any(|c| matches!(c, '*' | '?' | '['))
}

/// `path.Clean` for slash-separated relative paths: `.` for empty.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// One compiled `.dockerignore` pattern (moby's `patternmatcher.Pattern`).
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern, without its leading `!`.
    pub text: String,
    /// A `!` pattern: an exception that re-includes what it matches.
    pub exclusion: bool,
    toks: Vec<Tok>,
}

impl Pattern {
    /// Compiles `text` (already cleaned, without `!`); a bad class is a literal.
    pub fn new(text: &str, exclusion: bool) -> Self {
        Self {
            text: text.to_string(),
            exclusion,
            // The loose dialect never fails: a bad class is a literal.
            toks: compile(text, Dialect::Loose { double_star: true }).unwrap_or_default(),
        }
    }

    fn is_match(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        matches(&self.toks, &s)
    }
}

/// The patterns of one `.dockerignore`, in order.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// The patterns, in file order; the last that matches decides.
    pub patterns: Vec<Pattern>,
}

impl Matcher {
    /// Reads a `.dockerignore` file's text (moby's `ignorefile.ReadAll`).
    pub fn parse(text: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            let mut p = line.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    continue;
                }
            }
            let mut c = clean(p);
            if c.len() > 1 && c.starts_with('/') {
                c = c[1..].to_string();
            }
            patterns.push(Pattern::new(&c, exclusion));
        }
        Self { patterns }
    }

    /// A matcher from pattern lines, each read as a `.dockerignore` line.
    pub fn from_patterns<S: AsRef<str>>(list: &[S]) -> Self {
        Self::parse(
            &list
                .iter()
                .map(|s| s.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when some pattern is a `!` exception (moby's `Exclusions`).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// `MatchesOrParentMatches`: is `path` (relative, slash-separated)
    /// excluded from the context?
    pub fn excludes(&self, path: &str) -> bool {
        let file = clean(path);
        let parent = match file.rfind('/') {
            Some(i) => &file[..i],
            None => ".",
        };
        let dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.is_match(&file);
            if !hit && parent != "." {
                for i in 0..dirs.len() {
                    if p.is_match(&dirs[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether an excluded directory must still be walked because an
    /// exception might re-include something under it (as the docker CLI
    /// decides when it archives a context).
    pub fn may_include_under(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().any(|p| {
            if !p.exclusion {
                return false;
            }
            let t = &p.text;
            t.contains("**")
                || t.starts_with(&format!("{dir}/"))
                || compile_prefix_could_match(t, &dir)
        })
    }
}

/// Whether a pattern's leading components could match `dir`'s components
/// (wildcards in the pattern's directories).
fn compile_prefix_could_match(pattern: &str, dir: &str) -> bool {
    let pc: Vec<&str> = pattern.split('/').collect();
    let dc: Vec<&str> = dir.split('/').collect();
    if pc.len() <= dc.len() {
        return false;
    }
    dc.iter().zip(&pc).all(|(d, p)| glob_match(p, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let m = Matcher::parse(
            "# comment\n\n**/*.log\n!keep.log\n/secret\ntmp/**\n!tmp/important\ndocs/*.md\n!docs/README.md\n*/cache\n",
        );
        let cases = [
            ("a.log", true),
            ("x/y/z.log", true),
            ("keep.log", false),
            ("sub/keep.log", true),
            ("secret", true),
            ("secret/inner", true),
            ("tmp/a", true),
            ("tmp/b/c", true),
            ("tmp/important", false),
            ("docs/a.md", true),
            ("docs/README.md", false),
            ("docs/sub/a.md", false),
            ("a/cache", true),
            ("a/cache/f", true),
            ("a/b/cache", false),
            ("main.go", false),
            ("Dockerfile", false),
        ];
        for (p, want) in cases {
            assert_eq!(m.excludes(p), want, "{p}");
        }
    }

    #[test]
    fn double_star_forms() {
        let m = Matcher::parse("**");
        assert!(m.excludes("anything/at/all"));
        let m = Matcher::parse("a/**/b");
        assert!(m.excludes("a/b"));
        assert!(m.excludes("a/x/y/b"));
        assert!(!m.excludes("a/xb"));
        let m = Matcher::parse("**/node_modules\n!**/node_modules/keep");
        assert!(m.excludes("node_modules/x"));
        assert!(m.excludes("p/node_modules/x"));
        assert!(!m.excludes("p/node_modules/keep"));
        assert!(m.may_include_under("p/node_modules"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("a/./b/../c/"), "a/c");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean(""), ".");
        let m = Matcher::parse("/a/./b\n!  c");
        assert_eq!(m.patterns[0].text, "a/b");
        assert_eq!(m.patterns[1].text, "c");
        assert!(m.patterns[1].exclusion);
    }
}
