//! Any bytes as a line of every format: recognising and parsing never panic, and a
//! recognised start's body offset is inside the line.
#![no_main]

use jans_exporter::source::formats::{self, LineStart};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for id in 0..formats::ALL.len() as u8 {
        let format = formats::by_id(id);
        let _ = format.detect(data);
        for complete in [false, true] {
            if let LineStart::Start { body_at } = format.line_start(data, complete) {
                assert!(body_at <= data.len());
                let _ = format.parse(data, body_at, id);
            }
        }
        let _ = format.parse(data, 0, id);
    }
});
