//! The formats' one-pass readers against the general path: any bytes, in any format,
//! cut at two points, give the same events and resume points after every feed, with
//! the one-pass readers on and off.
#![no_main]

use jans_exporter::event::ResumePoint;
use jans_exporter::source::framer::Framer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [selector, a, b, c, d, stream @ ..] = data else {
        return;
    };
    let format = match selector % 4 {
        3 => None,
        f => Some(f),
    };
    let point = |lo: u8, hi: u8| usize::from(u16::from_le_bytes([lo, hi])) % (stream.len() + 1);
    let (mut x, mut y) = (point(*a, *b), point(*c, *d));
    if x > y {
        std::mem::swap(&mut x, &mut y);
    }
    let mut fast = Framer::new(format, ResumePoint::default());
    let mut general = Framer::general_only(format, ResumePoint::default());
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for piece in [&stream[..x], &stream[x..y], &stream[y..]] {
        fast.feed(piece, &mut got);
        general.feed(piece, &mut want);
        assert_eq!(got, want);
        assert_eq!(fast.resume_point(), general.resume_point());
    }
    fast.finish(&mut got);
    general.finish(&mut want);
    assert_eq!(got, want);
});
