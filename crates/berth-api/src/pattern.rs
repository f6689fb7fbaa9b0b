//! Shell-style path patterns: Go's `path.Match` (image reference filters)
//! and the looser dialect `.dockerignore` files and `COPY` sources use,
//! both compiled to the same tokens and matched by the same code.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `[…]`: one character in (or, negated, not in) the ranges.
    Class(bool, Vec<(char, char)>),
    /// `**/` or a `**` inside a pattern: `(.*/)?`.
    DirStar,
    /// `**` at the end: anything.
    All,
}

/// Which pattern language to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Go's `path.Match`: `[^…]` negates, a malformed pattern matches nothing.
    Go,
    /// berth's `.dockerignore`/`COPY` reading: `[!…]` negates too, and an
    /// unclosed `[` or a trailing `\` is a literal; `**` spans directories
    /// when `double_star` is set.
    Loose { double_star: bool },
}

/// Reads one class after its `[`; returns the token and the index after
/// the closing `]`, or `None` when the class is malformed.
fn class(chars: &[char], mut j: usize, dialect: Dialect) -> Option<(Tok, usize)> {
    let go = dialect == Dialect::Go;
    let neg = match chars.get(j) {
        Some('^') => true,
        Some('!') => !go,
        _ => false,
    };
    if neg {
        j += 1;
    }
    // Go's getEsc: an escaped character, refusing `-` and `]` unescaped.
    let esc = |j: &mut usize| -> Option<char> {
        let mut c = *chars.get(*j)?;
        if go && (c == '-' || c == ']') {
            return None;
        }
        if c == '\\' {
            if *j + 1 < chars.len() {
                *j += 1;
                c = chars[*j];
            } else if go {
                return None;
            }
        }
        *j += 1;
        Some(c)
    };
    let mut ranges = Vec::new();
    while j < chars.len() {
        // A `]` first in the class is a member (loosely) or an error (Go).
        if chars[j] == ']' && !ranges.is_empty() {
            return Some((Tok::Class(neg, ranges), j + 1));
        }
        let lo = esc(&mut j)?;
        let mut hi = lo;
        if chars.get(j) == Some(&'-') && (go || chars.get(j + 1).is_some_and(|x| *x != ']')) {
            j += 1;
            hi = esc(&mut j)?;
        }
        ranges.push((lo, hi));
    }
    None
}

/// Tokens of `pattern`, or `None` when Go would call it malformed.
pub(crate) fn compile(pattern: &str, dialect: Dialect) -> Option<Vec<Tok>> {
    let double_star = dialect == Dialect::Loose { double_star: true };
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if double_star && chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    out.push(Tok::All);
                } else {
                    out.push(Tok::DirStar);
                }
            }
            '*' => {
                // `**` in path.Match is two stars: one is enough.
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    out.push(Tok::Lit(n));
                    i += 1;
                }
                None if dialect == Dialect::Go => return None,
                None => out.push(Tok::Lit('\\')),
            },
            '[' => match class(&chars, i, dialect) {
                Some((tok, next)) => {
                    out.push(tok);
                    i = next;
                }
                None if dialect == Dialect::Go => return None,
                None => out.push(Tok::Lit('[')),
            },
            c => out.push(Tok::Lit(c)),
        }
    }
    Some(out)
}

/// Whether the tokens match all of `s`.
pub(crate) fn matches(toks: &[Tok], s: &[char]) -> bool {
    let Some((t, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match t {
        Tok::Lit(c) => s.first() == Some(c) && matches(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|c| *c != '/') && matches(rest, &s[1..]),
        Tok::Class(neg, ranges) => {
            let Some(c) = s.first() else { return false };
            let hit = ranges.iter().any(|(a, b)| a <= c && c <= b);
            hit != *neg && matches(rest, &s[1..])
        }
        Tok::Star => {
            for i in 0..=s.len() {
                if matches(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == '/' {
                    break;
                }
            }
            false
        }
        Tok::DirStar => {
            if matches(rest, s) {
                return true;
            }
            (0..s.len()).any(|i| s[i] == '/' && matches(rest, &s[i + 1..]))
        }
        Tok::All => (0..=s.len()).any(|i| matches(rest, &s[i..])),
    }
}

/// Whether `name` matches `pattern` in `dialect`.
pub(crate) fn matches_in(dialect: Dialect, pattern: &str, name: &str) -> bool {
    let Some(toks) = compile(pattern, dialect) else {
        return false;
    };
    let s: Vec<char> = name.chars().collect();
    matches(&toks, &s)
}

/// Go's `path.Match`: the whole `name` against `pattern`. `*` and `?` never
/// match `/`, `[^a-z]` is a (negated) class, `\` escapes; a malformed
/// pattern (unclosed `[`, trailing `\`) matches nothing.
pub fn path_match(pattern: &str, name: &str) -> bool {
    matches_in(Dialect::Go, pattern, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_match_as_go() {
        for (p, n, want) in [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("b?sybox", "busybox", true),
            ("a?c", "a/c", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abe", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a[", "a[", false),
            ("a\\", "a\\", false),
            ("[]a]", "]", false),
            ("[-]", "-", false),
            ("[x-]", "x", false),
            ("[\\-]", "-", true),
            ("[a-\\z]", "m", true),
            ("[!a]", "!", true),
            ("*x", "xxx", true),
            ("a[/]b", "a/b", true),
            ("myrepo/*", "myrepo/bb:v1", true),
            ("*", "myrepo/bb", false),
        ] {
            assert_eq!(path_match(p, n), want, "{p:?} vs {n:?}");
        }
    }

    #[test]
    fn loose_dialect() {
        let loose = |p: &str, n: &str| matches_in(Dialect::Loose { double_star: false }, p, n);
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "d/a.txt", false),
            ("d/*", "d/a", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("file[", "file[", true),
            ("[]a]", "]", true),
            ("[x-]", "-", true),
            ("a\\", "a\\", true),
        ] {
            assert_eq!(loose(p, n), want, "{p:?} vs {n:?}");
        }
    }
}
