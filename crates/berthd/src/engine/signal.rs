//! Signal names and numbers as Docker takes them (`--stop-signal`,
//! `kill -s`, the Dockerfile's `STOPSIGNAL`): shared by containers and the
//! builder, so it is a leaf.

use crate::engine::{EngineError, Result};

/// `SIGTERM`, `TERM`, `15` → 15.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || EngineError::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(bad());
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('+').parse().map_err(|_| bad())?
        };
        return Ok(base + off);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let base = libc::SIGRTMAX();
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.trim_start_matches('-').parse().map_err(|_| bad())?
        };
        return Ok(base - off);
    }
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_form() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("USR1").unwrap(), libc::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
