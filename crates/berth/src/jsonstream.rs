//! Showing a JSON-message stream (pull, push) as the docker CLI does
//! (`jsonmessage.DisplayJSONMessagesStream`): on a terminal, one line per
//! layer, redrawn in place with cursor movements; otherwise plain lines,
//! without the progress updates.

use std::collections::HashMap;
use std::io::Write;

use berth_api::jsonmessage::{render_progress, JsonMessage};

pub struct Display {
    ids: HashMap<String, usize>,
    is_term: bool,
    width: usize,
    buf: Vec<u8>,
}

impl Display {
    pub fn new(is_term: bool, width: usize) -> Self {
        Self {
            ids: HashMap::new(),
            is_term,
            width,
            buf: Vec::new(),
        }
    }

    /// Feeds raw bytes of the stream; shows each complete message. An
    /// `errorDetail` ends the display with its message as the error.
    /// `aux` receives the `aux` payloads (push's digest, …).
    pub fn feed(
        &mut self,
        data: &[u8],
        out: &mut dyn Write,
        aux: &mut dyn FnMut(&serde_json::Value),
    ) -> anyhow::Result<()> {
        self.buf.extend_from_slice(data);
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let jm: JsonMessage = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("invalid progress message {line:?}: {e}"))?;
            self.message(&jm, out, aux)?;
        }
        out.flush()?;
        Ok(())
    }

    fn message(
        &mut self,
        jm: &JsonMessage,
        out: &mut dyn Write,
        aux: &mut dyn FnMut(&serde_json::Value),
    ) -> anyhow::Result<()> {
        if let Some(e) = &jm.error_detail {
            anyhow::bail!("{}", e.message);
        }
        if let Some(a) = &jm.aux {
            aux(a);
            return Ok(());
        }
        let id = jm.id.clone().unwrap_or_default();
        let has_progress =
            jm.progress_detail.is_some() || jm.progress.as_deref().is_some_and(|p| !p.is_empty());
        let mut diff = 0usize;
        if !id.is_empty() && has_progress {
            let n = self.ids.len();
            let line = match self.ids.get(&id) {
                Some(l) => *l,
                None => {
                    self.ids.insert(id.clone(), n);
                    if self.is_term {
                        writeln!(out)?;
                    }
                    n
                }
            };
            diff = self.ids.len() - line;
            if self.is_term && diff > 0 {
                write!(out, "\x1b[{diff}A")?;
            }
        } else {
            // Something that is not a layer line: later updates must not
            // redraw lines from before it.
            self.ids.clear();
        }
        self.show(jm, out)?;
        if !id.is_empty() && self.is_term && diff > 0 {
            write!(out, "\x1b[{diff}B")?;
        }
        Ok(())
    }

    /// moby's `JSONMessage.Display`.
    fn show(&self, jm: &JsonMessage, out: &mut dyn Write) -> anyhow::Result<()> {
        let detail = jm.progress_detail.as_ref();
        let bar = detail
            .map(|d| render_progress(d.current.unwrap_or(0), d.total.unwrap_or(0), self.width))
            .unwrap_or_default();
        let mut endl = "";
        if self.is_term && jm.stream.is_none() && detail.is_some() {
            write!(out, "\x1b[2K\r")?;
            endl = "\r";
        } else if detail.is_some() && !bar.is_empty() {
            // No progress bars off a terminal.
            return Ok(());
        }
        if let Some(id) = jm.id.as_deref().filter(|s| !s.is_empty()) {
            write!(out, "{id}: ")?;
        }
        let status = jm.status.as_deref().unwrap_or("");
        if detail.is_some() && self.is_term {
            write!(out, "{status} {bar}{endl}")?;
        } else if let Some(p) = jm.progress.as_deref().filter(|p| !p.is_empty()) {
            write!(out, "{status} {p}{endl}")?;
        } else if let Some(s) = &jm.stream {
            write!(out, "{s}{endl}")?;
        } else {
            writeln!(out, "{status}{endl}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(is_term: bool, lines: &[&str]) -> String {
        let mut d = Display::new(is_term, 200);
        let mut out = Vec::new();
        for l in lines {
            d.feed(format!("{l}\r\n").as_bytes(), &mut out, &mut |_| {})
                .unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_output_skips_progress() {
        let s = run(
            false,
            &[
                r#"{"status":"Pulling from library/busybox","id":"latest"}"#,
                r#"{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}"#,
                r#"{"status":"Downloading","progressDetail":{"current":5,"total":10},"progress":"[=>] 5B/10B","id":"abc"}"#,
                r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#,
                r#"{"status":"Digest: sha256:x"}"#,
            ],
        );
        assert_eq!(
            s,
            "latest: Pulling from library/busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:x\n"
        );
    }

    #[test]
    fn terminal_output_redraws_layer_lines() {
        let s = run(
            true,
            &[
                r#"{"status":"Pulling fs layer","progressDetail":{},"id":"a"}"#,
                r#"{"status":"Pulling fs layer","progressDetail":{},"id":"b"}"#,
                r#"{"status":"Downloading","progressDetail":{"current":5,"total":10},"id":"a"}"#,
            ],
        );
        assert!(
            s.starts_with("\n\x1b[1A\x1b[2K\ra: Pulling fs layer \r\x1b[1B"),
            "{s:?}"
        );
        assert!(s.contains("\x1b[2A\x1b[2K\ra: Downloading ["), "{s:?}");
        assert!(s.ends_with("\r\x1b[2B"), "{s:?}");
        let mut d = Display::new(false, 80);
        let e = d
            .feed(
                b"{\"errorDetail\":{\"message\":\"boom\"},\"error\":\"boom\"}\r\n",
                &mut Vec::new(),
                &mut |_| {},
            )
            .unwrap_err();
        assert_eq!(e.to_string(), "boom");
    }
}
