//! The ingest hot path: framing + parsing + applying to the store, per layout.
//! Whole-process figures (records/s, peak RSS, against mtail) come from
//! `scripts/bench-ingest.sh`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jans_exporter::event::{Action, Event, Message};
use jans_exporter::generate::{write_record, Generator, Layout, Spec, DEFAULT_ACTIVE};
use jans_exporter::source::framer::{Framer, ResumePoint};
use jans_exporter::store::{Store, StoreConfig};

const RECORDS: usize = 20_000;
const CHUNK: usize = 64 * 1024;

fn log(layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    for r in Generator::new(Spec {
        users: 50_000,
        ..Spec::default()
    })
    .take(RECORDS)
    {
        write_record(&mut out, layout, &r, 0).unwrap();
    }
    out
}

fn ingest(c: &mut Criterion) {
    let active: Vec<Action> = DEFAULT_ACTIVE
        .iter()
        .map(|a| Action::from_name(a))
        .collect();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, layout) in [("text", Layout::Text), ("json", Layout::Json)] {
        let bytes = log(layout);
        group.bench_function(format!("frame+parse/{name}"), |b| {
            let mut events = Vec::with_capacity(1024);
            b.iter(|| {
                let mut framer = Framer::new(None, ResumePoint::default());
                let mut n = 0;
                for chunk in bytes.chunks(CHUNK) {
                    framer.feed(chunk, &mut events);
                    n += events.len();
                    events.clear();
                }
                n
            })
        });
        // The fallback alone: what every record cost before the one-pass readers, and
        // what a record upstream writes in an unusual shape still costs.
        group.bench_function(format!("frame+parse, general path only/{name}"), |b| {
            let mut events = Vec::with_capacity(1024);
            b.iter(|| {
                let mut framer = Framer::general_only(None, ResumePoint::default());
                let mut n = 0;
                for chunk in bytes.chunks(CHUNK) {
                    framer.feed(chunk, &mut events);
                    n += events.len();
                    events.clear();
                }
                n
            })
        });
        group.bench_function(format!("frame+parse+store/{name}"), |b| {
            b.iter(|| {
                let mut store = Store::new(StoreConfig::new(14, 13, &active));
                let mut framer = Framer::new(None, ResumePoint::default());
                for chunk in bytes.chunks(CHUNK) {
                    let mut events = Vec::with_capacity(256);
                    framer.feed(chunk, &mut events);
                    store.apply(Message::Batch(jans_exporter::event::Batch {
                        events,
                        ..Default::default()
                    }));
                }
                store.counters().records[0]
            })
        });
    }
    group.finish();

    let events: Vec<Event> = {
        let mut framer = Framer::new(None, ResumePoint::default());
        let mut out = Vec::new();
        framer.feed(&log(Layout::Text), &mut out);
        out
    };
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("apply", |b| {
        b.iter(|| {
            let mut store = Store::new(StoreConfig::new(14, 13, &active));
            for e in &events {
                store.apply_event(e);
            }
            store.counters().bytes_read
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = ingest
}
criterion_main!(benches);
