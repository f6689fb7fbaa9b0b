//! Detach keys (`--detach-keys`, `detachKeys`): moby/term's `ToBytes`
//! syntax, comma-separated `ctrl-<key>` names or single characters.

/// The default sequence, `ctrl-p,ctrl-q`.
pub const DEFAULT: [u8; 2] = [16, 17];

/// A detach-key list that is not valid; the daemon and the CLI word the
/// message differently, so this carries nothing and each caller formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid detach keys")]
pub struct InvalidKeys;

/// `ctrl-p,ctrl-q` → `[16, 17]`: each comma-separated item is one byte
/// (`a`), or `ctrl-` and one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`.
/// Items are trimmed; names are case-sensitive, as moby's.
pub fn parse(s: &str) -> Result<Vec<u8>, InvalidKeys> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if let Some(k) = p.strip_prefix("ctrl-") {
            let mut chars = k.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(InvalidKeys);
            };
            out.push(match c {
                'a'..='z' => c as u8 - b'a' + 1,
                '@' => 0,
                '[' => 27,
                '\\' => 28,
                ']' => 29,
                '^' => 30,
                '_' => 31,
                _ => return Err(InvalidKeys),
            });
        } else if p.len() == 1 {
            out.push(p.as_bytes()[0]);
        } else {
            return Err(InvalidKeys);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_moby() {
        assert_eq!(parse("ctrl-p,ctrl-q"), Ok(DEFAULT.to_vec()));
        assert_eq!(parse("a,ctrl-@"), Ok(vec![b'a', 0]));
        assert_eq!(parse(" ctrl-a , ctrl-_"), Ok(vec![1, 31]));
        assert_eq!(
            parse("ctrl-[,ctrl-\\,ctrl-],ctrl-^"),
            Ok(vec![27, 28, 29, 30])
        );
        assert_eq!(parse("ctrl-pp"), Err(InvalidKeys));
        assert_eq!(parse("ctrl-P"), Err(InvalidKeys));
        assert_eq!(parse("ctrl-1"), Err(InvalidKeys));
        assert_eq!(parse("é"), Err(InvalidKeys));
        assert_eq!(parse("ab"), Err(InvalidKeys));
        assert_eq!(parse(""), Err(InvalidKeys));
    }
}
