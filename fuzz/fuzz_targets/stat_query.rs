//! Any form or query string for the Janssen-compatible stat endpoint: validated as
//! upstream validates, and an accepted query renders, in both JSON shapes and in the
//! text format, without a panic.
#![no_main]

use jans_exporter::store::View;
use jans_exporter::view::janssen_stat::{parse_query, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    if let Ok(query) = parse_query(&params) {
        let (_, body) = render(&View::default(), &query);
        assert!(!body.is_empty());
    }
});
