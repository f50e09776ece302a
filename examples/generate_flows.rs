//! Writes an audit log and a server log (`jans-auth.log`) as a real jans-auth would
//! for the same traffic: whole flows (first logins with redirects, consent and wrong
//! passwords, SSO, refresh, client credentials, device-code polling, revocations,
//! rejections, service checks, server errors), and prints their exact truth.
//!
//! cargo run --release --example generate_flows -- --flows 2000 --out examples/logs

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use jans_exporter::generate::flows::{write_entries, FlowSpec, Flows};
use jans_exporter::generate::Layout;

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Text,
    Json,
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    flows: u64,
    #[arg(long, value_enum, default_value_t = LayoutArg::Text)]
    layout: LayoutArg,
    #[arg(long, default_value_t = 200)]
    users: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First flow time, RFC 3339.
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: String,
    /// Mean gap between flows in milliseconds.
    #[arg(long, default_value_t = 2000)]
    gap_ms: i64,
    /// Share of password attempts that are wrong.
    #[arg(long, default_value_t = 0.05)]
    wrong_password_ratio: f64,
    /// Folder for `jans-auth_audit.log` and `jans-auth.log` (with `-json` before
    /// `.log` for the JSON layout).
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let start = chrono::DateTime::parse_from_rfc3339(&args.start)
        .map_err(|e| std::io::Error::other(format!("--start: {e}")))?;
    let mut flows = Flows::new(FlowSpec {
        seed: args.seed,
        users: args.users,
        start_ms: start.timestamp_millis(),
        mean_gap_ms: args.gap_ms,
        wrong_password_ratio: args.wrong_password_ratio,
        utc_offset_secs: 0,
    });
    let (layout, suffix) = match args.layout {
        LayoutArg::Text => (Layout::Text, ""),
        LayoutArg::Json => (Layout::Json, "-json"),
    };
    let open = |name: String| -> std::io::Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::new(std::fs::File::create(args.out.join(name))?))
    };
    let mut audit = open(format!("jans-auth_audit{suffix}.log"))?;
    let mut server = open(format!("jans-auth{suffix}.log"))?;
    let mut drift = fastrand::Rng::with_seed(args.seed);
    for _ in 0..args.flows {
        let entries = flows.flow();
        write_entries(
            &mut audit,
            &mut server,
            layout,
            &entries,
            0,
            Some(&mut drift),
        )?;
    }
    audit.flush()?;
    server.flush()?;
    let t = &flows.truth;
    eprintln!(
        "{} audit records, {} server-log events; logins {} ok / {} failed; authorizations {:?}",
        t.audit.records,
        t.server_lines,
        t.authentications("user", true),
        t.authentications("user", false),
        t.authorizations
    );
    Ok(())
}
