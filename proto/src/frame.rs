//! Framing: one JSON document per line, each frame bounded by a hard size limit.
//!
//! JSON escapes control characters inside strings, so a raw newline can only end a frame. The
//! [`FrameBuffer`] is sans-I/O: the caller reads bytes into [`FrameBuffer::spare`] from whatever
//! transport it has (a blocking socket, a tokio stream, a serial line) and takes whole frames out.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a frame could not be taken.
#[derive(Debug)]
pub enum FrameError {
    /// More than `limit` bytes arrived without a newline.
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The frame is not the JSON document expected.
    Json(serde_json::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { limit } => {
                write!(f, "frame larger than the limit of {limit} bytes")
            }
            FrameError::Json(e) => write!(f, "malformed frame: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// Appends `value` as one frame (JSON and a newline) to `out`.
pub fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    #[cfg(feature = "std")]
    serde_json::to_writer(&mut *out, value).map_err(FrameError::Json)?;
    // Without std serde_json has no writer API: serialise apart, then copy.
    #[cfg(not(feature = "std"))]
    out.extend_from_slice(&serde_json::to_vec(value).map_err(FrameError::Json)?);
    out.push(b'\n');
    Ok(())
}

/// Parses one frame's bytes (with or without its newline).
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(frame).map_err(FrameError::Json)
}

/// Accumulates bytes from a stream and splits them into frames of at most `limit` bytes.
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Where the newline search resumes, so a slow trickle is scanned once.
    scanned: usize,
    limit: usize,
}

impl FrameBuffer {
    /// A buffer for frames of at most `limit` bytes, newline included.
    pub fn new(limit: usize) -> Self {
        FrameBuffer {
            buf: vec![0; limit.clamp(64, 64 * 1024)],
            start: 0,
            end: 0,
            scanned: 0,
            limit,
        }
    }

    /// Takes the next whole frame (without its newline), if one has arrived.
    ///
    /// After [`FrameError::TooLarge`] the stream cannot be resynchronised; drop the connection.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let from = self.start + self.scanned;
        if let Some(i) = self.buf[from..self.end].iter().position(|&b| b == b'\n') {
            let nl = from + i;
            if nl + 1 - self.start > self.limit {
                return Err(FrameError::TooLarge { limit: self.limit });
            }
            let frame = self.start..nl;
            self.start = nl + 1;
            self.scanned = 0;
            return Ok(Some(&self.buf[frame]));
        }
        self.scanned = self.end - self.start;
        if self.scanned >= self.limit {
            return Err(FrameError::TooLarge { limit: self.limit });
        }
        Ok(None)
    }

    /// Takes `n` raw bytes (a payload announced by the previous frame), if they have arrived.
    pub fn take_raw(&mut self, n: usize) -> Result<Option<&[u8]>, FrameError> {
        if n > self.limit {
            return Err(FrameError::TooLarge { limit: self.limit });
        }
        if self.end - self.start < n {
            return Ok(None);
        }
        let raw = self.start..self.start + n;
        self.start += n;
        self.scanned = 0;
        Ok(Some(&self.buf[raw]))
    }

    /// Room to read more bytes into; call [`FrameBuffer::filled`] with how many were read.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Grow up to one byte past the limit, enough to tell an oversized frame.
            let new_len = (self.buf.len() * 2)
                .min(self.limit + 1)
                .max(self.buf.len() + 1);
            self.buf.resize(new_len, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`FrameBuffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Bytes received that are not yet part of a whole frame.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(fb: &mut FrameBuffer, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let spare = fb.spare();
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            fb.filled(n);
            rest = &rest[n..];
        }
    }

    #[test]
    fn splits_frames_across_reads() {
        let mut fb = FrameBuffer::new(1024);
        feed(&mut fb, b"{\"a\":1}\n{\"b\"");
        assert_eq!(fb.next_frame().unwrap(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(fb.next_frame().unwrap(), None);
        feed(&mut fb, b":2}\n");
        assert_eq!(fb.next_frame().unwrap(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(fb.next_frame().unwrap(), None);
        assert_eq!(fb.pending(), 0);
    }

    #[test]
    fn refuses_frames_over_the_limit() {
        let mut fb = FrameBuffer::new(100);
        let mut big = vec![b'x'; 150];
        big.push(b'\n');
        let mut err = None;
        for chunk in big.chunks(30) {
            feed(&mut fb, chunk);
            if let Err(e) = fb.next_frame() {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(FrameError::TooLarge { limit: 100 })));
    }

    #[test]
    fn a_frame_of_exactly_the_limit_passes() {
        let mut fb = FrameBuffer::new(10);
        feed(&mut fb, b"123456789\n");
        assert_eq!(fb.next_frame().unwrap(), Some(&b"123456789"[..]));
    }

    #[test]
    fn raw_payloads_follow_their_header() {
        let mut fb = FrameBuffer::new(1 << 20);
        feed(
            &mut fb,
            b"{\"kind\":\"text\",\"bytes\":12}\nline1\nline2\n{\"a\":1}\n",
        );
        assert!(fb.next_frame().unwrap().is_some());
        assert_eq!(fb.take_raw(12).unwrap(), Some(&b"line1\nline2\n"[..]));
        assert_eq!(fb.next_frame().unwrap(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(fb.take_raw(5).unwrap(), None);
        let big = vec![b'p'; 300_000];
        for c in big.chunks(4096) {
            feed(&mut fb, c);
        }
        assert_eq!(
            fb.take_raw(300_000).unwrap().map(|b| b.len()),
            Some(300_000)
        );
        assert!(FrameBuffer::new(10).take_raw(11).is_err());
    }

    #[test]
    fn round_trips_requests() {
        use crate::{Envelope, Request};
        let env = Envelope {
            v: crate::VERSION,
            req: Request::Status {
                patterns: vec!["*.service".into()],
                lines: 10,
            },
        };
        let mut out = Vec::new();
        encode(&env, &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Envelope = decode(&out).unwrap();
        assert_eq!(back, env);
    }
}
