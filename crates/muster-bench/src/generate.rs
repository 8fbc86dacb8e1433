//! `--generate`: the synthetic company written before the server starts, through Muster's own
//! provisioning code in this process (the same `create_user` a SCIM POST runs: normalisation,
//! placement, the sync log entry and the event), without HTTP. Many writers at once, so SQLite's
//! writer shares its commits among them; a million users take minutes rather than the hours a
//! load over SCIM at one client would. The server then starts on the filled database, and its
//! start-up time is part of the report.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use muster_core::ids::ProviderId;
use muster_core::{Muster, Settings, SystemClock};
use muster_store::{AnyStore, SqliteSettings};

use crate::harness::user_body;

/// Writes users `0..n` for `provider` (whose token is `token`) into the database at `url`; their
/// ids, by index.
pub(crate) async fn users(
    url: &str,
    public_url: &str,
    provider: ProviderId,
    token: &str,
    n: usize,
    writers: usize,
) -> anyhow::Result<Vec<String>> {
    let store = AnyStore::connect(url, &SqliteSettings::default(), 8)
        .await
        .context("open the database to generate users")?;
    let settings = Settings {
        public_url: public_url.to_string(),
        ..Settings::default()
    };
    let muster = Muster::new(store.shared(), Arc::new(SystemClock), settings);
    let ctx = muster
        .authenticate_provider(provider, token)
        .await
        .context("the provider's token")?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers.max(1) {
        let (muster, ctx, next) = (muster.clone(), ctx.clone(), next.clone());
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(made);
                }
                let created = muster
                    .create_user(&ctx, &user_body(i))
                    .await
                    .with_context(|| format!("generating user {i}"))?;
                made.push((i, created.view.user.id.to_string()));
                if (i + 1) % 100_000 == 0 {
                    eprintln!(
                        "generated {} users in {:.0} s",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    let mut ids = vec![String::new(); n];
    while let Some(done) = tasks.join_next().await {
        for (i, id) in done.context("a generating task")?? {
            ids[i] = id;
        }
    }
    store.close().await;
    eprintln!(
        "generated {n} users in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(ids)
}
