//! Timestamps as Docker writes them: RFC 3339 in UTC, with nanoseconds.

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
