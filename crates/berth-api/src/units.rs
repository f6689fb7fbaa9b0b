//! docker/go-units sizes: `HumanSize` (decimal, `1.98MB`), `BytesSize`
//! (binary, `23.54GiB`) and `RAMInBytes` (`512m`, `1.5GiB` → bytes).

/// Why `RAMInBytes` refused a size; the texts are go-units' own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No number at all, or a negative one.
    #[error("invalid size: '{0}'")]
    InvalidSize(String),
    /// The number part is not a float.
    #[error("strconv.ParseFloat: parsing {0:?}: invalid syntax")]
    ParseFloat(String),
    /// An unknown unit.
    #[error("invalid suffix: '{0}'")]
    InvalidSuffix(String),
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Go's `%.<p>g`: `p` significant digits, trailing zeros dropped, and
/// the exponent form when rounding reaches `10^p` (`999.7` at 3 digits is
/// `1e+03`, as docker prints it).
fn gprec(x: f64, p: i32) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let p = p.max(1);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    // The exponent after rounding to `p` digits decides the form.
    let e = format!("{:.*e}", (p - 1) as usize, x);
    let (mant, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mant), exp.abs());
    }
    let decimals = (p - 1 - exp).max(0) as usize;
    trim(&format!("{x:.decimals$}"))
}

/// `size` scaled down by `base` until under it, printed with `prec`
/// significant digits and the matching unit.
fn scaled(size: f64, base: f64, prec: i32, units: &[&str; 9]) -> String {
    let mut x = size;
    let mut i = 0;
    while x >= base && i < units.len() - 1 {
        x /= base;
        i += 1;
    }
    format!("{}{}", gprec(x, prec), units[i])
}

/// go-units' `HumanSizeWithPrecision`: decimal units, `prec` significant
/// digits (`HumanSizeWithPrecision(1982368, 3)` is `1.98MB`).
pub fn human_size_with_precision(size: f64, prec: i32) -> String {
    scaled(size, 1000.0, prec, &DECIMAL)
}

/// go-units' `HumanSize`: decimal units, four significant digits
/// (`2.161MB`, `512B`, `123.5kB`).
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// go-units' `BytesSize`: binary units, four significant digits
/// (`23.54GiB`, `1KiB`).
pub fn bytes_size(size: f64) -> String {
    scaled(size, 1024.0, 4, &BINARY)
}

/// go-units' `RAMInBytes`: `512m`, `1g`, `1.5GiB`, `64 MB`, `1024`; units
/// are binary whatever their spelling, and any case goes.
pub fn ram_in_bytes(s: &str) -> Result<i64, SizeError> {
    parse_size(s, 1024.0)
}

/// go-units' `FromHumanSize`: the same spellings as `ram_in_bytes`, but
/// units are decimal whatever their spelling (`1k` and `1KiB` are 1000),
/// as dockerd reads log drivers' `max-size`.
pub fn from_human_size(s: &str) -> Result<i64, SizeError> {
    parse_size(s, 1000.0)
}

/// go-units' `parseSize`: a number, an optional space, and a unit of
/// `base`'s powers.
fn parse_size(s: &str, base: f64) -> Result<i64, SizeError> {
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(SizeError::InvalidSize(s.to_string()));
    };
    // A space between number and unit is dropped.
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    let mut size: f64 = num
        .parse()
        .map_err(|_| SizeError::ParseFloat(num.to_string()))?;
    if size < 0.0 {
        return Err(SizeError::InvalidSize(s.to_string()));
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    if sfx.len() > 3 {
        return Err(SizeError::InvalidSuffix(sfx.to_string()));
    }
    let sfx = sfx.to_ascii_lowercase();
    let bad = || SizeError::InvalidSuffix(sfx.clone());
    let b = sfx.as_bytes();
    if b[0] == b'b' {
        return if b.len() > 1 {
            Err(bad())
        } else {
            Ok(size as i64)
        };
    }
    let mult: f64 = match b[0] {
        b'k' => base,
        b'm' => base.powi(2),
        b'g' => base.powi(3),
        b't' => base.powi(4),
        b'p' => base.powi(5),
        _ => return Err(bad()),
    };
    size *= mult;
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &b[1..] != b"ib") {
        return Err(bad());
    }
    Ok(size as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        let h3 = |n: f64| human_size_with_precision(n, 3);
        assert_eq!(h3(0.0), "0B");
        assert_eq!(h3(1_982_368.0), "1.98MB");
        assert_eq!(h3(4096.0), "4.1kB");
        assert_eq!(h3(999.0), "999B");
        assert_eq!(h3(100_000_000.0), "100MB");
        assert_eq!(h3(999_700.0), "1e+03kB");
        assert_eq!(h3(1_234.0), "1.23kB");
        assert_eq!(h3(0.5), "0.5B");
        assert_eq!(human_size(2_161_000.0), "2.161MB");
        assert_eq!(human_size(512.0), "512B");
        assert_eq!(human_size(123_456.0), "123.5kB");
        assert_eq!(human_size(1_000_000.0), "1MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999_960.0), "1000kB");
        assert_eq!(human_size(9_999_960.0), "10MB");
    }

    #[test]
    fn binary_sizes() {
        assert_eq!(bytes_size(25_277_116_416.0), "23.54GiB");
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(129_499_136.0), "123.5MiB");
        assert_eq!(bytes_size(1_048_063.0), "1023KiB");
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("1g"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("100"), Ok(100));
        assert_eq!(ram_in_bytes("10m"), Ok(10 << 20));
        assert_eq!(ram_in_bytes("1k"), Ok(1024));
        assert_eq!(ram_in_bytes("64 MB"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("2p"), Ok(2 << 50));
        assert!(ram_in_bytes("12x").is_err());
        assert!(ram_in_bytes("x").is_err());
        let err = |s: &str| ram_in_bytes(s).unwrap_err().to_string();
        assert_eq!(err("1x"), "invalid suffix: 'x'");
        assert_eq!(err("m"), "invalid size: 'm'");
        assert_eq!(err("-1"), "invalid size: '-1'");
        assert_eq!(err("1kibb"), "invalid suffix: 'kibb'");
        assert_eq!(err("1KiBB"), "invalid suffix: 'KiBB'");
        assert_eq!(
            err("a1"),
            "strconv.ParseFloat: parsing \"a1\": invalid syntax"
        );
    }
}
