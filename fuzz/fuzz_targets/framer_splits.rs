//! Any bytes in any format, fed whole, split in two at any point, or cut there and
//! resumed from the resume point: the same events every way — the property that makes
//! counts independent of write sizes and of restarts.
#![no_main]

use jans_exporter::event::ResumePoint;
use jans_exporter::source::framer::Framer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [selector, a, b, stream @ ..] = data else {
        return;
    };
    let format = match selector % 4 {
        3 => None,
        f => Some(f),
    };
    let cut = if stream.is_empty() {
        0
    } else {
        usize::from(u16::from_le_bytes([*a, *b])) % (stream.len() + 1)
    };
    let mut whole = Framer::new(format, ResumePoint::default());
    let mut expected = Vec::new();
    whole.feed(stream, &mut expected);

    let mut split = Framer::new(format, ResumePoint::default());
    let mut got = Vec::new();
    split.feed(&stream[..cut], &mut got);
    split.feed(&stream[cut..], &mut got);
    assert_eq!(got, expected, "split at {cut}");

    // A restart at the cut: a new framer from the resume point, with the format the
    // first one settled on, sees the rest.
    let mut first = Framer::new(format, ResumePoint::default());
    let mut resumed = Vec::new();
    first.feed(&stream[..cut], &mut resumed);
    let at = first.resume_point();
    let Ok(offset) = usize::try_from(at.offset) else {
        return;
    };
    assert!(offset <= cut, "resume point {at:?} past the cut {cut}");
    let mut rest = Framer::new(first.format(), at);
    rest.feed(&stream[offset..], &mut resumed);
    assert_eq!(resumed, expected, "resumed at {at:?} after a cut at {cut}");
});
