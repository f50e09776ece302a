//! Writes a realistic Janssen audit log (either layout) to stdout.
//!
//! cargo run --release --example generate_audit_log -- --records 1000000 --layout text > audit.log

use std::io::{BufWriter, Write};

use clap::{Parser, ValueEnum};
use jans_exporter::generate::{write_record, Generator, Layout, Spec};

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Text,
    Json,
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    records: u64,
    #[arg(long, value_enum, default_value_t = LayoutArg::Text)]
    layout: LayoutArg,
    #[arg(long, default_value_t = 500)]
    users: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First record time, RFC 3339.
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: String,
    /// Mean gap between records in milliseconds.
    #[arg(long, default_value_t = 2000)]
    gap_ms: i64,
    /// Share of failed records.
    #[arg(long, default_value_t = 0.04)]
    failure_ratio: f64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let start = chrono::DateTime::parse_from_rfc3339(&args.start)
        .map_err(|e| std::io::Error::other(format!("--start: {e}")))?;
    let spec = Spec {
        seed: args.seed,
        users: args.users,
        start_ms: start.timestamp_millis(),
        mean_gap_ms: args.gap_ms,
        failure_ratio: args.failure_ratio,
        ..Spec::default()
    };
    let layout = match args.layout {
        LayoutArg::Text => Layout::Text,
        LayoutArg::Json => Layout::Json,
    };
    let offset = spec.utc_offset_secs;
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    for record in Generator::new(spec).take(args.records as usize) {
        write_record(&mut out, layout, &record, offset)?;
    }
    out.flush()
}
