//! Any bytes as a snapshot: decoding either refuses them or yields a snapshot the store
//! restores from, saves and decodes again whole — never a panic, never unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = std::env::temp_dir().join(format!("jans-fuzz-{}", std::process::id()));
    jans_exporter::store::persist::exercise_decoder(data, &scratch);
});
