//! The user's subordinate id ranges (`/etc/subuid`, `/etc/subgid`), the ids
//! that container uids and gids 1.. map to.

use std::path::Path;

use super::RootlessError;

/// One `name:start:count` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// The first range of the user, given by name or by numeric id, as
/// shadow-utils' `newuidmap` accepts them.
pub fn parse(text: &str, name: &str, id: u32) -> Option<Range> {
    let id = id.to_string();
    text.lines().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let mut f = l.split(':');
        let who = f.next()?;
        let start = f.next()?.trim().parse().ok()?;
        let count: u32 = f.next()?.trim().parse().ok()?;
        ((who == name || who == id) && count > 0).then_some(Range { start, count })
    })
}

/// Reads the range of `name`/`id` from `file`; a typed error names the fix.
pub fn lookup(file: &Path, name: &str, id: u32) -> Result<Range, RootlessError> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    parse(&text, name, id).ok_or_else(|| RootlessError::NoSubids {
        user: name.to_string(),
        file: file.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_or_uid_first_wins() {
        let t = "# c\nalice:100000:65536\nbob:165536:65536\n1002:231072:10\nbob:1:1\n";
        assert_eq!(
            parse(t, "bob", 1001),
            Some(Range {
                start: 165536,
                count: 65536
            })
        );
        assert_eq!(parse(t, "carol", 1002).map(|r| r.start), Some(231072));
        assert_eq!(parse(t, "dave", 1003), None);
        assert_eq!(parse("eve:5:0\n", "eve", 1), None);
    }
}
