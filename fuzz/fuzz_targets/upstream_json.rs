//! Any JSON as a stat endpoint or FIDO2 metrics answer: read or refused, never a panic,
//! and every FIDO2 entry is either read or counted as skipped.
#![no_main]

use jans_exporter::upstream::{fido2, stat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = stat::parse(&body);
    if let Some((entries, skipped)) = fido2::parse_entries_counted(&body) {
        let items = body.as_array().map_or(0, Vec::len);
        assert_eq!(entries.len() + skipped.len(), items, "an entry neither read nor counted");
    }
});
