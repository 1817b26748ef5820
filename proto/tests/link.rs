//! Property tests of the link framing: whatever comes down the line, the reader never panics,
//! never holds more than a frame's limit, and reads the next good frame after any garbage.

use asyncmd_proto::link::{encode, Ask, Deframer, LinkError};
use proptest::prelude::*;

fn frame(ask: &Ask) -> Vec<u8> {
    let mut out = Vec::new();
    encode(ask, &mut out).unwrap();
    out
}

fn ask() -> impl Strategy<Value = Ask> {
    prop_oneof![
        Just(Ask::Hello { host_wall_us: 0 }),
        (prop::collection::vec("[a-z*@]{0,12}", 0..4), any::<u32>())
            .prop_map(|(patterns, lines)| Ask::Status { patterns, lines }),
        (prop::collection::vec("[a-z]{1,8}", 0..4), any::<bool>())
            .prop_map(|(units, dry_run)| Ask::Stop { units, dry_run }),
        (any::<Option<u64>>(), any::<Option<u32>>()).prop_map(|(after_seq, lines)| {
            Ask::Journal {
                units: Vec::new(),
                after_seq,
                lines,
                level: None,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn after_any_garbage_the_next_frame_is_read(
        noise in prop::collection::vec(any::<u8>(), 0..3000),
        msg in ask(),
    ) {
        let mut d = Deframer::new();
        let mut errors = 0;
        d.feed::<Ask>(&noise, |r| if r.is_err() { errors += 1 });
        // A delimiter ends whatever the noise left open, then a good frame follows.
        let mut line = vec![0u8];
        line.extend(frame(&msg));
        let mut got = Vec::new();
        d.feed::<Ask>(&line, |r| got.push(r));
        let last = got.pop().expect("the frame was read");
        prop_assert_eq!(last, Ok(msg));
        for r in got {
            prop_assert!(r.is_err(), "only the noise's tail comes before it");
        }
    }

    #[test]
    fn a_frame_split_anywhere_reads_the_same(msg in ask(), cut in 0usize..200) {
        let f = frame(&msg);
        let cut = cut.min(f.len());
        let mut d = Deframer::new();
        let mut got = Vec::new();
        d.feed::<Ask>(&f[..cut], |r| got.push(r));
        d.feed::<Ask>(&f[cut..], |r| got.push(r));
        prop_assert_eq!(got, vec![Ok(msg)]);
    }

    #[test]
    fn a_flipped_bit_is_never_taken_for_a_message(msg in ask(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut f = frame(&msg);
        let i = at.index(f.len() - 1);
        f[i] ^= 1 << bit;
        let mut d = Deframer::new();
        let mut got = Vec::new();
        d.feed::<Ask>(&f, |r| got.push(r));
        // A flip may make a zero (splitting the frame) or spoil it: never a different message.
        for r in got {
            match r {
                Ok(m) => prop_assert_eq!(m, msg.clone()),
                Err(LinkError::TooLarge) => prop_assert!(false, "one frame cannot overflow"),
                Err(_) => {}
            }
        }
    }
}
