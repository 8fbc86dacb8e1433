//! Values kept per thread and combined when read: the metrics every request records, and the
//! token cache every request reads (`auth::cache`).
//!
//! A value written by every request from both runtime threads moves its cache line from one
//! core to the other on every write. `prometheus-client`'s histogram keeps its buckets under a
//! lock, so each observation was a contended compare-and-swap, a sum and a bucket on a line the
//! other core had just written: under `GET /Users/{id}` at 32 connections those instructions
//! were half of the request log's own samples, and most of the database timings' (`perf
//! annotate`, docs/benchmarks.md). Here each thread writes a shard of its own, under a lock no
//! other thread takes except to read the totals (a `/metrics` scrape).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

/// How many shards a value has. Threads beyond this share them (still correct, only slower).
const SHARDS: usize = 16;

/// A shard on cache lines of its own (two lines: the adjacent-line prefetcher pairs them).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(Mutex<T>);

/// Which shard this thread writes: threads are numbered as they first record something.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SHARD: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// A `T` per thread (up to [`SHARDS`] of them); readers combine them.
#[derive(Debug)]
pub struct Shards<T> {
    shards: Box<[Padded<T>]>,
}

impl<T: Default> Default for Shards<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }
}

impl<T> Shards<T> {
    /// Runs `f` on this thread's shard.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A thread being torn down has no number left: it writes the first shard.
        let at = THREAD_SHARD.try_with(|i| *i).unwrap_or(0);
        let mut shard = self.shards[at]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut shard)
    }

    /// Runs `f` on every shard in turn (each locked while `f` runs), to read or change it.
    pub fn each(&self, mut f: impl FnMut(&mut T)) {
        for s in self.shards.iter() {
            f(&mut s.0.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

/// Histogram bucket bounds, in seconds, of every duration Muster measures.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations in seconds over [`BUCKETS`] (and one above them), as plain numbers:
/// a shard's, or the totals of all shards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    sum: f64,
    count: u64,
    /// How many observations fell in each bucket (not cumulative), the last above every bound.
    buckets: [u64; BUCKETS.len() + 1],
}

impl Histogram {
    /// Records one duration, in seconds.
    pub fn observe(&mut self, secs: f64) {
        self.sum += secs;
        self.count += 1;
        let at = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[at] += 1;
    }

    /// Adds another histogram's observations to this one.
    pub fn add(&mut self, other: &Histogram) {
        self.sum += other.sum;
        self.count += other.count;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the histogram as `prometheus-client` writes its own (the last bucket `+Inf`).
    pub fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.buckets.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }
}

/// A histogram every thread records into: [`Shards`] of [`Histogram`].
#[derive(Debug, Default)]
pub struct Timing(Shards<Histogram>);

impl Timing {
    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        self.0.with(|h| h.observe(secs));
    }

    /// The totals of every thread.
    pub fn total(&self) -> Histogram {
        let mut total = Histogram::default();
        self.0.each(|h| total.add(h));
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_matches_prometheus_clients_own() {
        let values = [
            0.0, 0.0004, 0.0005, 0.0006, 0.003, 0.7, 9.99, 10.0, 10.5, 1e9,
        ];
        let theirs = prometheus_client::metrics::histogram::Histogram::new(BUCKETS);
        let mut ours = Histogram::default();
        for v in values {
            theirs.observe(v);
            ours.observe(v);
        }
        #[derive(Debug)]
        struct Ours(Histogram);
        impl prometheus_client::collector::Collector for Ours {
            fn encode(
                &self,
                mut encoder: prometheus_client::encoding::DescriptorEncoder,
            ) -> Result<(), std::fmt::Error> {
                // `Registry::register` ends a help text with a full stop.
                let m = encoder.encode_descriptor(
                    "d",
                    "durations.",
                    None,
                    prometheus_client::metrics::MetricType::Histogram,
                )?;
                self.0.encode(m)
            }
        }
        let text = |r: &prometheus_client::registry::Registry| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, r)
                .unwrap_or_else(|e| panic!("{e}"));
            out
        };
        let mut r1 = prometheus_client::registry::Registry::default();
        r1.register("d", "durations", theirs);
        let mut r2 = prometheus_client::registry::Registry::default();
        r2.register_collector(Box::new(Ours(ours)));
        let expected = text(&r1);
        assert!(expected.contains("d_bucket{le=\"+Inf\"} 10"), "{expected}");
        assert_eq!(text(&r2), expected);
    }

    #[test]
    fn every_threads_observations_are_counted() {
        let t = std::sync::Arc::new(Timing::default());
        let threads: Vec<_> = (0..40)
            .map(|i| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        t.observe(std::time::Duration::from_micros(100 * (i % 3) + 1));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join()
                .unwrap_or_else(|_| panic!("a recording thread panicked"));
        }
        let total = t.total();
        assert_eq!(total.count(), 40_000);
        // 0.000001 s, 0.000101 s and 0.000201 s: all in the first bucket.
        assert_eq!(total.buckets[0], 40_000);
    }
}
