//! Reads the client's side of an SFTP session just enough to name its file operations (open
//! with its mode, remove, rename, mkdir, rmdir, setstat, opendir, symlink) as recording markers
//! and audit details. Bounded: packets that carry data (writes) are skipped, never buffered.

/// Operation packets larger than this are skipped rather than read (paths are far shorter).
const MAX_OP_PACKET: usize = 64 * 1024;

/// The stream parser: feed it the client's bytes in any chunks.
#[derive(Debug, Default)]
pub struct SftpWatch {
    /// The current packet's bytes, while its header or a small operation packet is read.
    buf: Vec<u8>,
    /// Bytes of the current packet still to skip.
    skip: usize,
}

fn take_u32(b: &[u8], at: &mut usize) -> Option<u32> {
    let v = b.get(*at..*at + 4)?;
    *at += 4;
    Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

fn take_str(b: &[u8], at: &mut usize) -> Option<String> {
    let n = take_u32(b, at)? as usize;
    let v = b.get(*at..at.checked_add(n)?)?;
    *at += n;
    Some(String::from_utf8_lossy(v).into_owned())
}

fn describe(packet: &[u8]) -> Option<String> {
    let kind = *packet.first()?;
    let mut at = 5; // type + request id
    let s = |at: &mut usize| take_str(packet, at);
    Some(match kind {
        3 => {
            let path = s(&mut at)?;
            let flags = take_u32(packet, &mut at)?;
            let mut modes = Vec::new();
            for (bit, name) in [
                (0x01, "read"),
                (0x02, "write"),
                (0x04, "append"),
                (0x08, "create"),
                (0x10, "truncate"),
                (0x20, "exclusive"),
            ] {
                if flags & bit != 0 {
                    modes.push(name);
                }
            }
            format!("sftp open {path} ({})", modes.join(","))
        }
        9 => format!("sftp setstat {}", s(&mut at)?),
        11 => format!("sftp opendir {}", s(&mut at)?),
        13 => format!("sftp remove {}", s(&mut at)?),
        14 => format!("sftp mkdir {}", s(&mut at)?),
        15 => format!("sftp rmdir {}", s(&mut at)?),
        18 => {
            let from = s(&mut at)?;
            let to = s(&mut at)?;
            format!("sftp rename {from} -> {to}")
        }
        20 => {
            let link = s(&mut at)?;
            let target = s(&mut at)?;
            format!("sftp symlink {link} -> {target}")
        }
        _ => return None,
    })
}

fn interesting(kind: u8) -> bool {
    matches!(kind, 3 | 9 | 11 | 13 | 14 | 15 | 18 | 20)
}

impl SftpWatch {
    /// The operations completed by this chunk, in order.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            // Read the 4-byte length and the type first.
            if self.buf.len() < 5 {
                let n = (5 - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                if self.buf.len() < 5 {
                    break;
                }
            }
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            let kind = self.buf[4];
            if len == 0 || !interesting(kind) || len > MAX_OP_PACKET {
                // Skip the rest of this packet (length counts the type byte already read).
                self.skip = len.saturating_sub(1);
                self.buf.clear();
                continue;
            }
            let want = 4 + len;
            let n = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == want {
                if let Some(op) = describe(&self.buf[4..]) {
                    out.push(op);
                }
                self.buf.clear();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&((body.len() + 5) as u32).to_be_bytes());
        p.push(kind);
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    fn s(x: &str) -> Vec<u8> {
        let mut v = (x.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(x.as_bytes());
        v
    }

    #[test]
    fn operations_are_named_whatever_the_chunking() {
        let mut stream = Vec::new();
        let mut open = s("/tmp/big.bin");
        open.extend_from_slice(&(0x02u32 | 0x08 | 0x10).to_be_bytes());
        open.extend_from_slice(&0u32.to_be_bytes());
        stream.extend(packet(3, &open));
        let mut write = s("handle");
        write.extend_from_slice(&0u64.to_be_bytes());
        write.extend(s(&"x".repeat(100_000)));
        stream.extend(packet(6, &write));
        let mut rename = s("/tmp/a");
        rename.extend(s("/tmp/b"));
        stream.extend(packet(18, &rename));
        stream.extend(packet(13, &s("/tmp/b")));
        let want = vec![
            "sftp open /tmp/big.bin (write,create,truncate)".to_string(),
            "sftp rename /tmp/a -> /tmp/b".to_string(),
            "sftp remove /tmp/b".to_string(),
        ];
        for chunk in [1, 3, 7, 4096, stream.len()] {
            let mut w = SftpWatch::default();
            let got: Vec<String> = stream.chunks(chunk).flat_map(|c| w.feed(c)).collect();
            assert_eq!(got, want, "chunks of {chunk}");
            assert!(w.buf.capacity() <= 64 * 1024 + 4);
        }
    }
}
