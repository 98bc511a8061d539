//! What a recording says in words: the commands typed (rebuilt from `i` input events, with
//! backspaces applied and escape sequences dropped), the exec commands and file operations
//! (from `m` markers), each with its time for a timeline that seeks the player, and the output
//! as plain text (escape sequences stripped, bounded) for full-text search.

use crate::cast::Event;

/// One entry of a session's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Command {
    /// Seconds since the start of the recording.
    pub time: f64,
    /// `typed` (a line of input), `exec`, `sftp` or `note` (other markers).
    pub kind: &'static str,
    pub text: String,
}

/// A recording's commands and output text.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub commands: Vec<Command>,
    /// Output without escape sequences, at most [`MAX_OUTPUT`] bytes.
    pub output: String,
}

/// Most output text kept per recording for search.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// Removes ANSI escape sequences (CSI, OSC, two-byte escapes) and other control characters
/// except newlines and tabs.
pub fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte in @..~.
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    chars.next();
                    // OSC: up to BEL or ESC \.
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\r' => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Builds the index of a parsed cast's events.
pub fn index(events: &[Event]) -> Index {
    let mut idx = Index::default();
    let mut line = String::new();
    let mut line_start = 0.0;
    for e in events {
        match e.code.as_str() {
            "i" => {
                let mut chars = e.data.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '\r' | '\n' => {
                            let text = line.trim().to_string();
                            if !text.is_empty() {
                                idx.commands.push(Command {
                                    time: line_start,
                                    kind: "typed",
                                    text,
                                });
                            }
                            line.clear();
                        }
                        '\u{7f}' | '\u{8}' => {
                            line.pop();
                        }
                        '\u{3}' | '\u{4}' => line.clear(),
                        '\u{1b}' => {
                            // Arrow keys and the like: skip the sequence.
                            if chars.peek() == Some(&'[') || chars.peek() == Some(&'O') {
                                chars.next();
                                for n in chars.by_ref() {
                                    if n.is_ascii_alphabetic() || n == '~' {
                                        break;
                                    }
                                }
                            }
                        }
                        c if c.is_control() => {}
                        c => {
                            if line.is_empty() {
                                line_start = e.time;
                            }
                            line.push(c);
                        }
                    }
                }
            }
            "m" => {
                let (kind, text) = if let Some(cmd) = e.data.strip_prefix("exec: ") {
                    ("exec", cmd.to_string())
                } else if e.data.starts_with("sftp") {
                    ("sftp", e.data.clone())
                } else {
                    ("note", e.data.clone())
                };
                idx.commands.push(Command {
                    time: e.time,
                    kind,
                    text,
                });
            }
            "o" if idx.output.len() < MAX_OUTPUT => {
                let p = plain(&e.data);
                let room = MAX_OUTPUT - idx.output.len();
                if p.len() <= room {
                    idx.output.push_str(&p);
                } else {
                    let mut cut = room;
                    while !p.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    idx.output.push_str(&p[..cut]);
                }
            }
            _ => {}
        }
    }
    idx
}

/// Where a session's cast lives under the recordings directory: `YYYY/MM/DD/ID.cast` by the
/// session's start (UTC).
pub fn relative_cast_path(started_ms: i64, session_id: &str) -> std::path::PathBuf {
    let day = chrono::DateTime::from_timestamp_millis(started_ms)
        .map(|t| t.format("%Y/%m/%d").to_string())
        .unwrap_or_else(|| "1970/01/01".into());
    std::path::PathBuf::from(day).join(format!("{session_id}.cast"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: f64, code: &str, data: &str) -> Event {
        Event {
            time,
            code: code.into(),
            data: data.into(),
        }
    }

    #[test]
    fn typed_lines_markers_and_plain_output() {
        let events = [
            ev(0.5, "o", "\u{1b}[1;32muser@db\u{1b}[0m$ "),
            ev(1.0, "i", "ls -l"),
            ev(1.2, "i", "x\u{7f}a\r"),
            ev(1.5, "o", "total 0\r\n"),
            ev(2.0, "i", "\u{1b}[Awho"),
            ev(2.1, "i", "ami\r"),
            ev(3.0, "m", "exec: uptime"),
            ev(4.0, "m", "sftp: put /tmp/x (10 bytes)"),
            ev(5.0, "m", "end: client_closed"),
        ];
        let idx = index(&events);
        let texts: Vec<(&str, &str, f64)> = idx
            .commands
            .iter()
            .map(|c| (c.kind, c.text.as_str(), c.time))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("typed", "ls -la", 1.0),
                ("typed", "whoami", 2.0),
                ("exec", "uptime", 3.0),
                ("sftp", "sftp: put /tmp/x (10 bytes)", 4.0),
                ("note", "end: client_closed", 5.0),
            ]
        );
        assert_eq!(idx.output, "user@db$ total 0\n");
        assert_eq!(
            relative_cast_path(0, "s1"),
            std::path::PathBuf::from("1970/01/01/s1.cast")
        );
    }
}
