//! The control socket's framing and request decoding, as the daemon runs them on what a peer
//! sends: bytes arrive in chunks of any size, frames are split at newlines under a size limit,
//! and each frame is decoded as an [`Envelope`]. Nothing may panic; a request that decodes
//! must encode back to a frame that decodes to the same request.

#![no_main]

use asyncmd_proto::frame::{decode, encode, FrameBuffer, FrameError};
use asyncmd_proto::Envelope;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The limit the fuzzer works with: small, so oversized frames are reached often.
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    // Chunk sizes of 1..=256 bytes, as reads of a socket may return.
    let chunk = usize::from(chunk) + 1;
    let mut frames = FrameBuffer::new(LIMIT);
    let mut fed = 0;
    'feed: while fed < bytes.len() {
        let spare = frames.spare();
        let n = spare.len().min(chunk).min(bytes.len() - fed);
        spare[..n].copy_from_slice(&bytes[fed..fed + n]);
        frames.filled(n);
        fed += n;
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() < LIMIT, "a frame past the limit was taken");
                    assert!(!frame.contains(&b'\n'), "a frame holds a newline");
                    check(frame);
                }
                Ok(None) => break,
                // The daemon drops the connection here: so does the fuzzer.
                Err(FrameError::TooLarge { .. }) => break 'feed,
                Err(e) => panic!("next_frame failed with {e}"),
            }
        }
        assert!(frames.pending() <= LIMIT, "the buffer holds past the limit");
    }
});

fn check(frame: &[u8]) {
    let Ok(env) = decode::<Envelope>(frame) else {
        return;
    };
    let mut out = Vec::new();
    encode(&env, &mut out).expect("a decoded request encodes");
    assert_eq!(out.last(), Some(&b'\n'));
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        1,
        "an encoded frame holds one newline, at its end"
    );
    let again: Envelope = decode(&out).expect("an encoded request decodes");
    // Floats may move by an ulp through serde_json's default parser; all else is exact.
    if !serde_json::to_value(&env).is_ok_and(|v| has_float(&v)) {
        assert_eq!(again, env, "a request changed through encode and decode");
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
