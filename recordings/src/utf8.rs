//! Output arrives in chunks that may split a multi-byte UTF-8 character; asciicast events are
//! JSON strings. This keeps an incomplete trailing sequence for the next chunk and replaces bytes
//! that can never be valid.

/// Carries at most 3 bytes (an incomplete UTF-8 sequence) from one chunk to the next.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text of `chunk` (with what was carried), leaving an incomplete tail for later.
    pub fn decode(&mut self, chunk: &[u8]) -> String {
        // The common case: nothing carried and a whole valid chunk — one copy.
        if self.pending.is_empty()
            && let Ok(s) = std::str::from_utf8(chunk)
        {
            return s.to_string();
        }
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(chunk);
        let mut out = String::with_capacity(bytes.len());
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete at the end: keep it for the next chunk.
                        None => {
                            self.pending = bad.to_vec();
                            break;
                        }
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                    }
                }
            }
        }
        out
    }

    /// What is left at the end of the stream (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            "\u{FFFD}".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_chunks_is_joined() {
        let mut c = Utf8Carry::default();
        let e = "é€😀".as_bytes();
        let mut out = String::new();
        for b in e {
            out.push_str(&c.decode(&[*b]));
        }
        assert_eq!(out, "é€😀");
        assert_eq!(c.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut c = Utf8Carry::default();
        assert_eq!(c.decode(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(c.decode(b"x\xe2\x82"), "x");
        assert_eq!(c.finish(), "\u{FFFD}");
    }
}
