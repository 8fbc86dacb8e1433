//! `/metrics` through `prometheus-client`, in the OpenMetrics text format (which Prometheus
//! scrapes natively):
//!
//! - `muster_http_requests_total` and `muster_http_request_duration_seconds` (a histogram) by
//!   route template, method, status and provider (the authenticated provider's id, or empty);
//! - the database: pool connections in use and idle, transaction and connection-wait timings, and
//!   sync log entries written (the store's collector);
//! - the deactivation scheduler: deactivations pending, overdue, and the age of the oldest
//!   overdue one (the scheduler's lag), read from the database at scrape time.
//!
//! Recording a request is one look-up in a map of the recording thread's own
//! ([`muster_core::shards`]) and a few additions, cheap enough to leave on under load; a scrape
//! adds the threads' maps up. Labels are bounded: route templates, not paths; provider ids only
//! once authenticated.

use std::sync::Arc;

use muster_core::shards::{Histogram, Shards};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;

/// A request's labels, built without formatting or copying text per request: the route is the
/// router's shared template and the provider's id is formatted when scraped. `prometheus-client` writes label values as they are, unescaped: every
/// value here comes from a closed alphabet (route templates of Muster's own router, HTTP method
/// tokens, which cannot hold `"`, `\\` or a line break, status numbers and UUIDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) route: Route,
    pub(crate) method: axum::http::Method,
    pub(crate) status: u16,
    pub(crate) provider: Option<muster_core::ids::ProviderId>,
}

/// A request's route template: the router's own (a shared string, not copied per request), or
/// none.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    Matched(axum::extract::MatchedPath),
    Unmatched,
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Matched(p) => p.as_str(),
            Route::Unmatched => "unmatched",
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

/// The families hash a key with std's SipHash (twice a request, one lookup each), which over the
/// route's text, the method, the status and the provider's id was about 1,300 of a GET's
/// instructions (callgrind, docs/benchmarks.md). So a key gives them one number, its fields
/// digested with FxHash: equal keys still hash equally, and SipHash has eight bytes to mix.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::BuildHasher;
        let mut fx = rustc_hash::FxBuildHasher.build_hasher();
        self.route.as_str().hash(&mut fx);
        self.method.as_str().hash(&mut fx);
        self.status.hash(&mut fx);
        self.provider.map(|p| p.0).hash(&mut fx);
        state.write_u64(std::hash::Hasher::finish(&fx));
    }
}

impl EncodeLabelSet for Key {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("route", self.route.as_str()).encode(encoder.encode_label())?;
        ("method", self.method.as_str()).encode(encoder.encode_label())?;
        ("status", self.status).encode(encoder.encode_label())?;
        let provider = self.provider.map(|p| p.to_string()).unwrap_or_default();
        ("provider", provider).encode(encoder.encode_label())
    }
}

impl Key {
    /// What a scrape sorts its rows by.
    fn order(&self) -> (&str, &str, u16, Option<uuid::Uuid>) {
        (
            self.route.as_str(),
            self.method.as_str(),
            self.status,
            self.provider.map(|p| p.0),
        )
    }
}

/// Request metrics of one instance: per thread, each request's duration by its labels (the
/// request count is the histogram's count).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Arc<Shards<FxHashMap<Key, Histogram>>>,
}

impl Metrics {
    pub(crate) fn record(&self, key: Key, secs: f64) {
        self.requests
            .with(|m| m.entry(key).or_default().observe(secs));
    }

    /// Adds the request metrics to a scrape's registry (read from the shards when encoded).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(RequestMetrics(self.requests.clone())));
    }
}

/// The request metrics as a scrape reads them: every thread's, added up.
#[derive(Debug)]
struct RequestMetrics(Arc<Shards<FxHashMap<Key, Histogram>>>);

impl Collector for RequestMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut total: FxHashMap<Key, Histogram> = FxHashMap::default();
        self.0.each(|m| {
            for (k, h) in m {
                total.entry(k.clone()).or_default().add(h);
            }
        });
        let mut rows: Vec<(Key, Histogram)> = total.into_iter().collect();
        // A stable order from scrape to scrape: by route, method, status, provider.
        rows.sort_by(|(a, _), (b, _)| a.order().cmp(&b.order()));
        {
            let mut m = encoder.encode_descriptor(
                "muster_http_requests",
                "Requests answered, by route, method, status and provider.",
                None,
                MetricType::Counter,
            )?;
            for (k, h) in &rows {
                use prometheus_client::encoding::EncodeMetric;
                ConstCounter::new(h.count()).encode(m.encode_family(k)?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "muster_http_request_duration_seconds",
            "Time to answer a request (to its response headers).",
            None,
            MetricType::Histogram,
        )?;
        for (k, h) in &rows {
            h.encode(m.encode_family(k)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        let key = Key {
            route: Route::Unmatched,
            method: axum::http::Method::GET,
            status: 200,
            provider: None,
        };
        m.record(key.clone(), 0.0007);
        m.record(key, 0.2);
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let labels = "route=\"unmatched\",method=\"GET\",status=\"200\",provider=\"\"";
        let line = |l: &str| out.lines().any(|x| x == l);
        assert!(
            line(&format!("muster_http_requests_total{{{labels}}} 2")),
            "{out}"
        );
        assert!(
            line(&format!(
                "muster_http_request_duration_seconds_bucket{{le=\"0.0005\",{labels}}} 0"
            )),
            "{out}"
        );
        assert!(
            line(&format!(
                "muster_http_request_duration_seconds_bucket{{le=\"0.001\",{labels}}} 1"
            )),
            "{out}"
        );
        assert!(
            line(&format!(
                "muster_http_request_duration_seconds_count{{{labels}}} 2"
            )),
            "{out}"
        );
    }
}
