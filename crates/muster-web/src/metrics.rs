//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! - `muster_http_requests_total` and `muster_http_request_duration_seconds` (a histogram) by
//!   route template, method, status and provider (the authenticated provider's id, or empty);
//! - the database: pool connections in use and idle, transaction and connection-wait timings, and
//!   sync log entries written (from the store);
//! - the deactivation scheduler: deactivations pending, overdue, and the age of the oldest
//!   overdue one (the scheduler's lag), read from the database at scrape time.
//!
//! Recording a request costs one short lock and a few additions, cheap enough to leave on under
//! load. Labels are bounded: route templates, not paths; provider ids only once authenticated.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Histogram bucket bounds, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with [`BUCKETS`].
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation, in seconds.
    pub fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    /// Writes the histogram's lines with `labels` (already formatted, without braces).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// A request's labels. Only the route is text of its own; a request repeating a known key
/// allocates nothing beyond it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) route: String,
    pub(crate) method: axum::http::Method,
    pub(crate) status: u16,
    pub(crate) provider: Option<muster_core::ids::ProviderId>,
}

/// Request metrics of one instance.
#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<HashMap<Key, Histogram>>,
}

/// Escapes a label value (Prometheus text format).
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub(crate) fn record(&self, key: Key, secs: f64) {
        if let Ok(mut m) = self.http.lock() {
            m.entry(key).or_default().observe(secs);
        }
    }

    /// Writes the request metrics.
    pub fn render(&self, out: &mut String) {
        let Ok(m) = self.http.lock() else { return };
        let mut keys: Vec<&Key> = m.keys().collect();
        keys.sort();
        out.push_str("# HELP muster_http_requests_total Requests answered, by route, method, status and provider.\n");
        out.push_str("# TYPE muster_http_requests_total counter\n");
        for k in &keys {
            let h = &m[*k];
            let _ = writeln!(
                out,
                "muster_http_requests_total{{{}}} {}",
                labels(k),
                h.count
            );
        }
        out.push_str("# HELP muster_http_request_duration_seconds Time to answer a request (to its response headers).\n");
        out.push_str("# TYPE muster_http_request_duration_seconds histogram\n");
        for k in &keys {
            m[*k].render(out, "muster_http_request_duration_seconds", &labels(k));
        }
    }
}

fn labels(k: &Key) -> String {
    format!(
        "route=\"{}\",method=\"{}\",status=\"{}\",provider=\"{}\"",
        label(&k.route),
        label(k.method.as_str()),
        k.status,
        k.provider.map(|p| p.to_string()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::default();
        h.observe(0.0007);
        h.observe(0.2);
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 0"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.001\"} 1"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.25\"} 2"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 2"));
        assert!(out.contains("x_count{a=\"b\"} 2"));
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
