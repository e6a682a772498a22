//! The durable log: group commit (write + fdatasync) and batched read-back
//! of realistic records, per record. Run: `cargo bench --bench log`.
//! Results: docs/BENCHMARKS.md ("Durable log").
//!
//! Each iteration appends one group of `GROUP` records of 160 bytes (a truck
//! fix's size on disk) as ingest does — built in a reused frame buffer, one
//! write and one fdatasync — and reads them back through a consumer's reader
//! (one pread, frames verified and lent without a copy), committing the
//! cursor lazily as the TSDB writer does. The log lives in `target/` on the
//! real disk, not a tmpfs, so the fdatasync is real.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wastewatch::log::{AppendBatch, Class, Durability, Log, LogOptions, CURSOR_TSDB};

const RECORD: usize = 160;

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("bench-log")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let log = Log::open_with(
        dir.path(),
        LogOptions::with_max_bytes(8 << 30),
        &[CURSOR_TSDB],
    )
    .unwrap();
    let payload = vec![0x5au8; RECORD];
    let mut g = c.benchmark_group("log");
    for group in [256u64, 4096] {
        g.throughput(Throughput::Elements(group));
        let mut reader = log.reader(CURSOR_TSDB).unwrap();
        let mut spare = Some(AppendBatch::new(Class::Ingest));
        g.bench_function(format!("append_fsync_read_{group}"), |b| {
            b.iter_batched(
                || (),
                |()| {
                    let mut batch = spare
                        .take()
                        .unwrap_or_else(|| AppendBatch::new(Class::Ingest));
                    for _ in 0..group {
                        batch.records.push(&payload).unwrap();
                    }
                    let reply = log.append_batch(batch);
                    reply.result.unwrap();
                    spare = Some(reply.batch);
                    let mut n = 0;
                    while n < group {
                        let b = reader.read(group as usize).unwrap();
                        for (_, p) in b.iter() {
                            black_box(p);
                        }
                        n += b.len() as u64;
                        let next = b.next;
                        log.commit_cursor(CURSOR_TSDB, next, Durability::Lazy)
                            .unwrap();
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
