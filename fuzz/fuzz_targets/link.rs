//! The serial link between the daemon and a board, on a noisy line: bytes of any kind are
//! split into COBS frames, checked (CRC, version) and decoded as the board decodes asks and
//! the host decodes replies, and the host reads a reply as it would show it. Nothing may
//! panic, nothing past the frame limit is held, and a message that decodes encodes back to
//! the same bytes.

#![no_main]

use asyncmd_proto::link::{decode, encode, Ask, Deframer, LinkError, Reply};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    run::<(u16, Ask)>(bytes, chunk, |_| {});
    // What a host makes of a board's reply: schedules described, decimals divided.
    run::<(u16, Reply)>(bytes, chunk, |(_, reply)| {
        let _ = reply.clone().into_response("board");
    });
});

fn run<T: Serialize + DeserializeOwned>(bytes: &[u8], chunk: usize, read: impl Fn(&T)) {
    let mut deframer = Deframer::new();
    for part in bytes.chunks(chunk) {
        deframer.feed::<T>(part, |got| match got {
            Ok(msg) => {
                read(&msg);
                round_trip(&msg)
            }
            Err(LinkError::Encode(e)) => panic!("decoding reported an encode error: {e}"),
            Err(_) => {}
        });
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(msg: &T) {
    let mut wire = Vec::new();
    // A message may decode that is too large to send again (its frame limit is on the
    // encoded form); that is refused, never panics.
    if encode(msg, &mut wire).is_err() {
        return;
    }
    assert_eq!(wire.last(), Some(&0), "a frame ends with its delimiter");
    assert!(
        !wire[..wire.len() - 1].contains(&0),
        "COBS leaves no zero inside"
    );
    let mut frame = wire[..wire.len() - 1].to_vec();
    let again: T = decode(&mut frame).expect("an encoded message decodes");
    let mut wire2 = Vec::new();
    encode(&again, &mut wire2).expect("it encodes again");
    assert_eq!(wire, wire2, "a message changed through encode and decode");
}
