//! JSON-message progress lines (pull, push, import, load, build), as moby's
//! `jsonmessage.JSONMessage`. The CLI only honours errors in `errorDetail`,
//! so errors always carry both `errorDetail` and the legacy `error`.

use serde::{Deserialize, Serialize};

use crate::units::human_size;

/// `progressDetail`: the numbers behind a progress line (moby's `JSONProgress`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgressDetail {
    /// Bytes done so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    /// Bytes in all, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// `errorDetail`: the error the CLI shows (moby's `JSONError`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    /// An optional numeric code (a build step's exit code, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The error's text.
    pub message: String,
}

/// One JSON-message line, as moby's `jsonmessage.JSONMessage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JsonMessage {
    /// Raw output text, printed as is (a build's step output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A status such as `Downloading` or `Pull complete`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `progressDetail`: the progress numbers.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// The rendered progress bar (see [`render_progress`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// What the status is about: a layer ID, an image or a tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `errorDetail`: the error the CLI honours.
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    /// The legacy `error` text, the same message as `errorDetail`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `aux`: extra JSON for the client (a push's digest, a build's image ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

impl JsonMessage {
    /// A bare `status` line.
    pub fn status(s: impl Into<String>) -> Self {
        Self {
            status: Some(s.into()),
            ..Default::default()
        }
    }

    /// A `status` line about `id` (a layer, image or tag).
    pub fn status_id(s: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            status: Some(s.into()),
            id: Some(id.into()),
            ..Default::default()
        }
    }

    /// A `stream` line of raw output.
    pub fn stream(s: impl Into<String>) -> Self {
        Self {
            stream: Some(s.into()),
            ..Default::default()
        }
    }

    /// An `aux` line carrying `v`.
    pub fn aux(v: serde_json::Value) -> Self {
        Self {
            aux: Some(v),
            ..Default::default()
        }
    }

    /// An error line: `errorDetail` with `code`, and the legacy `error`.
    pub fn error(message: impl Into<String>, code: Option<i64>) -> Self {
        let message = message.into();
        Self {
            error_detail: Some(ErrorDetail {
                code,
                message: message.clone(),
            }),
            error: Some(message),
            ..Default::default()
        }
    }

    /// A progress update with `progressDetail` only, no rendered bar.
    pub fn progress(status: &str, id: &str, current: i64, total: Option<i64>) -> Self {
        Self {
            status: Some(status.into()),
            id: Some(id.into()),
            progress_detail: Some(ProgressDetail {
                current: Some(current),
                total,
            }),
            ..Default::default()
        }
    }

    /// A per-layer status with an empty `progressDetail` (`{}`), as moby
    /// sends `Pulling fs layer`, `Pull complete`, `Pushed`, ….
    pub fn layer_status(status: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            status: Some(status.into()),
            id: Some(id.into()),
            progress_detail: Some(ProgressDetail::default()),
            ..Default::default()
        }
    }

    /// A progress update as moby's stream formatter writes it: the numbers
    /// in `progressDetail` and the rendered bar in `progress`.
    pub fn progress_bar(status: &str, id: &str, current: i64, total: i64) -> Self {
        Self {
            status: Some(status.into()),
            id: Some(id.into()),
            progress_detail: Some(ProgressDetail {
                current: (current != 0).then_some(current),
                total: (total != 0).then_some(total),
            }),
            progress: Some(render_progress(current, total, 200)),
            ..Default::default()
        }
    }

    /// One line of the stream, `\r\n`-terminated as moby writes it.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.extend_from_slice(b"\r\n");
        v
    }
}

/// moby's `JSONProgress.String()` for a terminal `width` columns wide: a
/// 50-character bar (only when wider than 110 columns) and `current/total`.
pub fn render_progress(current: i64, total: i64, width: usize) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{:>8}", human_size(current as f64));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = if width > 110 {
        format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct))
    } else {
        String::new()
    };
    let cur = human_size(current as f64);
    let numbers = if current > total {
        format!("{cur:>8}")
    } else {
        format!("{cur:>8}/{}", human_size(total as f64))
    };
    format!("{bar}{numbers}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_renders_as_docker() {
        assert_eq!(
            render_progress(50, 100, 200),
            format!("[{}>{}]      50B/100B", "=".repeat(25), " ".repeat(25))
        );
        assert_eq!(render_progress(50, 100, 80), "     50B/100B");
        let line =
            String::from_utf8(JsonMessage::layer_status("Pull complete", "abc").to_line()).unwrap();
        assert_eq!(
            line,
            "{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"abc\"}\r\n"
        );
    }

    #[test]
    fn errors_carry_error_detail() {
        let line = String::from_utf8(JsonMessage::error("boom", Some(7)).to_line()).unwrap();
        assert_eq!(
            line,
            "{\"errorDetail\":{\"code\":7,\"message\":\"boom\"},\"error\":\"boom\"}\r\n"
        );
    }
}
