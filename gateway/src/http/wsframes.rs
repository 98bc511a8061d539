//! Counting websocket messages as their bytes are copied, for the request log: each frame
//! header is read with tungstenite's parser (the payload is skipped, never buffered or
//! changed), and a data frame with FIN set ends a message. Bytes that are no websocket (the
//! parser refuses them) stop the counting; the copy goes on.

use std::io::Cursor;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::OpCode;

/// Longest frame header: 2 bytes, 8 of length, 4 of mask.
const MAX_HEADER: usize = 14;

/// One direction's message count (see the module).
#[derive(Debug, Default)]
pub struct Frames {
    /// Header bytes gathered so far.
    head: Vec<u8>,
    /// Payload bytes still to skip.
    skip: u64,
    /// Complete messages seen.
    pub messages: u64,
    /// Not a websocket stream: no longer counting.
    lost: bool,
}

impl Frames {
    /// Follows `bytes`, just copied.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let take = (MAX_HEADER - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            let mut cursor = Cursor::new(self.head.as_slice());
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((header, payload))) => {
                    let used = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
                    // What was gathered past the header is payload: hand it back.
                    let extra = self.head.len().saturating_sub(used);
                    if header.is_final && matches!(header.opcode, OpCode::Data(_)) {
                        self.messages += 1;
                    }
                    self.head.clear();
                    self.skip = payload;
                    bytes = &bytes[take - extra.min(take)..];
                }
                Ok(None) if self.head.len() < MAX_HEADER => bytes = &bytes[take..],
                _ => self.lost = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame: FIN and opcode, a payload of `len` bytes, masked or not.
    fn frame(fin: bool, opcode: u8, len: usize, masked: bool) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        let m = if masked { 0x80 } else { 0 };
        match len {
            0..=125 => f.push(m | len as u8),
            126..=65535 => {
                f.push(m | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(m | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if masked {
            f.extend_from_slice(&[1, 2, 3, 4]);
        }
        f.extend(std::iter::repeat_n(0x81u8, len));
        f
    }

    #[test]
    fn messages_are_counted_across_fragments_sizes_and_reads() {
        let mut stream = Vec::new();
        stream.extend(frame(true, 1, 5, true)); // text
        stream.extend(frame(false, 2, 200, true)); // binary, first fragment
        stream.extend(frame(true, 9, 0, true)); // ping between fragments
        stream.extend(frame(true, 0, 70_000, true)); // last fragment
        stream.extend(frame(true, 1, 0, false)); // empty text, unmasked
        stream.extend(frame(true, 8, 2, false)); // close
        for piece in [1, 3, 13, 4096, stream.len()] {
            let mut f = Frames::default();
            for chunk in stream.chunks(piece) {
                f.feed(chunk);
            }
            assert_eq!(f.messages, 3, "read {piece} bytes at a time");
            assert!(!f.lost);
        }
    }

    #[test]
    fn what_is_no_websocket_stops_the_count() {
        let mut f = Frames::default();
        f.feed(&[0x8f, 0x05, 1, 2, 3, 4, 5]); // opcode 0xF: reserved
        f.feed(&frame(true, 1, 3, true));
        assert_eq!(f.messages, 0);
        assert!(f.lost);
    }
}
