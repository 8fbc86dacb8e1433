//! Bulk requests: parsing and planning never panic, and the plan names every operation once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_scim::bulk::{self, Step};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(req) = bulk::parse(&body, 1000) else { return };
    let steps = bulk::plan(&req.ops);
    let mut seen = vec![0u32; req.ops.len()];
    for s in &steps {
        let i = match s {
            Step::Run(i) | Step::Circular(i) | Step::Unknown(i, _) => *i,
        };
        seen[i] += 1;
    }
    assert!(seen.iter().all(|n| *n == 1), "{steps:?}");
});
