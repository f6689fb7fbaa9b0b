//! moby's shell lexer (`ProcessWord`), as the classic builder applies it to
//! each instruction argument: quote removal, the escape token, and
//! `$VAR`/`${VAR:-…}` expansion. Hand-written for the reason given in
//! `dockerfile.rs`: no crate reproduces this grammar.

/// Expands one word as moby's shell lexer `ProcessWord` does: quotes are
/// removed, the escape token escapes, `$VAR`, `${VAR}`, `${VAR:-x}`,
/// `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`, `${VAR?msg}` are
/// replaced. `lookup` gives a variable's value (`None` = unset).
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut lx = Lexer {
        c: &chars,
        i: 0,
        escape,
        lookup,
    };
    lx.word(&[])
}

struct Lexer<'a> {
    c: &'a [char],
    i: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    /// Reads until the end or one of `stop` (unquoted, unescaped).
    fn word(&mut self, stop: &[char]) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if stop.contains(&c) {
                break;
            }
            self.i += 1;
            match c {
                '\'' => {
                    loop {
                        match self.peek() {
                            None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                            Some('\'') => {
                                self.i += 1;
                                break;
                            }
                            Some(x) => {
                                out.push(x);
                                self.i += 1;
                            }
                        }
                    }
                }
                '"' => loop {
                    match self.peek() {
                        None => return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        ),
                        Some('"') => {
                            self.i += 1;
                            break;
                        }
                        Some('$') => {
                            self.i += 1;
                            out.push_str(&self.dollar()?);
                        }
                        Some(x) if x == self.escape => {
                            self.i += 1;
                            match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    out.push(n);
                                    self.i += 1;
                                }
                                _ => out.push(x),
                            }
                        }
                        Some(x) => {
                            out.push(x);
                            self.i += 1;
                        }
                    }
                },
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let n = self.name();
            if n.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&n).unwrap_or_default());
        }
        self.i += 1;
        let n = self.name();
        if n.is_empty() {
            return Err("bad substitution: missing variable name in ${}".into());
        }
        let val = (self.lookup)(&n);
        match self.peek() {
            Some('}') => {
                self.i += 1;
                Ok(val.unwrap_or_default())
            }
            Some(c) => {
                self.i += 1;
                let colon = c == ':';
                let op = if colon {
                    let o = self.peek().ok_or("bad substitution: unexpected end")?;
                    self.i += 1;
                    o
                } else {
                    c
                };
                if !matches!(op, '-' | '+' | '?') {
                    return Err(format!(
                        "unsupported modifier ({}{op}) in substitution",
                        if colon { ":" } else { "" }
                    ));
                }
                let alt = self.word(&['}'])?;
                if self.peek() != Some('}') {
                    return Err(format!("missing '}}' in substitution of ${{{n}"));
                }
                self.i += 1;
                let set = if colon {
                    val.as_deref().is_some_and(|v| !v.is_empty())
                } else {
                    val.is_some()
                };
                Ok(match op {
                    '-' => {
                        if set {
                            val.unwrap_or_default()
                        } else {
                            alt
                        }
                    }
                    '+' => {
                        if set {
                            alt
                        } else {
                            String::new()
                        }
                    }
                    _ => {
                        if set {
                            val.unwrap_or_default()
                        } else {
                            return Err(if alt.is_empty() {
                                format!("{n}: is not allowed to be unset")
                            } else {
                                format!("{n}: {alt}")
                            });
                        }
                    }
                })
            }
            None => Err(format!("missing '}}' in substitution of ${{{n}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_table() {
        let env = |k: &str| -> Option<String> {
            match k {
                "A" => Some("1".into()),
                "EMPTY" => Some(String::new()),
                "SP" => Some("a b".into()),
                _ => None,
            }
        };
        let cases = [
            ("$A", "1"),
            ("${A}", "1"),
            ("x${A}y", "x1y"),
            ("$A$A", "11"),
            ("$UNSET", ""),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${UNSET-def}", "def"),
            ("${A:-def}", "1"),
            ("${A:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("${UNSET:-$A}", "1"),
            ("${UNSET:-${A:+nested}}", "nested"),
            ("'$A'", "$A"),
            ("\"$A\"", "1"),
            ("\"a  b\"", "a  b"),
            ("\\$A", "$A"),
            ("\"\\$A\"", "$A"),
            ("\"a\\b\"", "a\\b"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("a$", "a$"),
            ("$1", ""),
            ("${SP}", "a b"),
            ("100%", "100%"),
        ];
        for (w, want) in cases {
            assert_eq!(expand(w, '\\', &env).as_deref(), Ok(want), "{w}");
        }
        assert_eq!(expand("`$A", '`', &env).as_deref(), Ok("$A"));
        assert!(expand("${UNSET:?must be set}", '\\', &env)
            .unwrap_err()
            .contains("must be set"));
        assert!(expand("'open", '\\', &env).is_err());
        assert!(expand("${A", '\\', &env).is_err());
    }
}
