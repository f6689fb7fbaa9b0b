//! Go's `time.Duration` in text: `time.ParseDuration` (flags, filters,
//! `HEALTHCHECK` options) and go-units' `HumanDuration` (`Up 3 minutes`).

/// The one error `time.ParseDuration` gives here, whatever is wrong:
/// `time: invalid duration "abc"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration {0:?}")]
pub struct InvalidDuration(pub String);

/// Go's `time.ParseDuration`, in nanoseconds: an optional sign, then one or
/// more decimal numbers each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`), as in `1h30m` or `-1.5s`; a bare `0` needs no unit.
pub fn parse(s: &str) -> Result<i64, InvalidDuration> {
    let bad = || InvalidDuration(s.to_string());
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

/// go-units' `HumanDuration` of `secs` seconds: `Less than a second`,
/// `About a minute`, `3 hours`, `2 weeks` (negative counts as zero).
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ => {
            // Hours round to the nearest, as go-units adds half an hour.
            let h = (s as f64 / 3600.0).round() as i64;
            if h == 1 {
                "About an hour".into()
            } else if h < 48 {
                format!("{h} hours")
            } else if h < 24 * 14 {
                format!("{} days", h / 24)
            } else if h < 24 * 60 {
                format!("{} weeks", h / 24 / 7)
            } else if h < 24 * 365 * 2 {
                format!("{} months", h / 24 / 30)
            } else {
                format!("{} years", h / 24 / 365)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        assert_eq!(parse("1h30m"), Ok(5400 * 1_000_000_000));
        assert_eq!(parse("30s"), Ok(30_000_000_000));
        assert_eq!(parse("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse("500ms"), Ok(500_000_000));
        assert_eq!(parse("1.5us"), Ok(1_500));
        assert_eq!(parse("2µs"), Ok(2_000));
        assert_eq!(parse("0s"), Ok(0));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("-0"), Ok(0));
        assert_eq!(parse("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(parse("+2m"), Ok(120_000_000_000));
        for bad in ["", "abc", "5", "s", "-", "1x", "1..5s", "1s5"] {
            assert_eq!(parse(bad), Err(InvalidDuration(bad.into())), "{bad:?}");
        }
        assert_eq!(
            parse("abc").unwrap_err().to_string(),
            "time: invalid duration \"abc\""
        );
    }

    #[test]
    fn human_as_go_units() {
        assert_eq!(human(-3), "Less than a second");
        assert_eq!(human(0), "Less than a second");
        assert_eq!(human(1), "1 second");
        assert_eq!(human(36), "36 seconds");
        assert_eq!(human(60), "About a minute");
        assert_eq!(human(130), "2 minutes");
        assert_eq!(human(3599), "59 minutes");
        assert_eq!(human(3600), "About an hour");
        assert_eq!(human(3600 * 3), "3 hours");
        assert_eq!(human(3600 * 50), "2 days");
        assert_eq!(human(3600 * 24 * 15), "2 weeks");
        assert_eq!(human(3600 * 24 * 90), "3 months");
        assert_eq!(human(3600 * 24 * 365 * 3), "3 years");
    }
}
