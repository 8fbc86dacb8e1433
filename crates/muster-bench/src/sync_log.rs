//! `sync-log-bench`: fills a database's sync log with N entries through the store, then times a
//! filtered page, a deep page, and a full-range CSV export (written to /dev/null), and reports the
//! peak memory of the process.

use muster_core::synclog::event::Event;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use muster_core::ids::ProviderId;
use muster_core::model::{Actor, Outcome, SyncLogEntry};
use muster_core::store::LogQuery;
use muster_core::synclog::query::{csv_header, csv_line};
use muster_core::{Muster, Settings, SystemClock, Timestamp};
use muster_store::{AnyStore, SqliteSettings};
use serde_json::json;

/// Times the sync log at scale.
#[derive(Debug, Parser)]
struct Args {
    /// Entries to insert.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Database (default: a fresh SQLite file in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("muster-synclog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("muster.db").display()));
    let store = AnyStore::connect(&url, &SqliteSettings::default(), 8)
        .await
        .context("open")?;
    store.migrate().await?;
    let muster = Muster::new(store.shared(), Arc::new(SystemClock), Settings::default());
    let env = muster.ensure_environment("default").await?;
    let admin = Actor::Admin {
        name: "bench".into(),
    };
    let providers: Vec<ProviderId> = vec![
        muster
            .create_provider(env.id, "Okta", &admin)
            .await?
            .provider
            .id,
        muster
            .create_provider(env.id, "Entra", &admin)
            .await?
            .provider
            .id,
    ];
    let actions = [
        Event::UserCreated,
        Event::UserUpdated,
        Event::GroupMembersAdded,
        Event::UserBlocked,
        Event::UserDeactivated,
        Event::GroupMembersRemoved,
    ];
    let span_us: i64 = 90 * 86_400 * 1_000_000;
    let start = muster.now().micros() - span_us;
    let step = (span_us / args.entries.max(1) as i64).max(1);
    let t0 = Instant::now();
    let batch = 1000u64;
    let mut i = 0u64;
    while i < args.entries {
        let mut entries = Vec::with_capacity(batch as usize);
        for k in i..(i + batch).min(args.entries) {
            let p = providers[(k % 2) as usize];
            let error = k % 100 == 0;
            entries.push(SyncLogEntry {
                environment_id: env.id,
                at: Timestamp(start + k as i64 * step),
                provider_id: Some(p),
                actor: Actor::Provider { id: p },
                action: actions[(k % actions.len() as u64) as usize],
                subject_kind: Some("user".into()),
                subject_id: Some(format!("0191d6a0-0000-7000-8000-{:012}", k % 100_000)),
                subject_name: Some(format!("user{}@bench.example", k % 100_000)),
                details: json!({"changes": [{"attribute": "title", "before": "Engineer", "after": "Manager"}]}),
                outcome: if error { Outcome::Error } else { Outcome::Success },
                message: error.then(|| "Unable to update user's role: role no longer exists".to_string()),
            });
        }
        let mut tx = muster.store.write().await?;
        tx.append_log(&entries).await?;
        tx.commit().await?;
        i += batch;
    }
    let insert_secs = t0.elapsed().as_secs_f64();
    println!(
        "inserted {} entries in {:.1} s ({:.0} entries/s)",
        args.entries,
        insert_secs,
        args.entries as f64 / insert_secs
    );

    // A filtered page: one provider, one action, one day, newest first.
    let mut times = Vec::new();
    for d in 0..50i64 {
        let since = Timestamp(start + (d % 89) * 86_400_000_000);
        let q = LogQuery {
            since: Some(since),
            until: Some(since.plus_secs(86_400)),
            provider: Some(providers[(d % 2) as usize]),
            action: Some(
                if d % 2 == 0 {
                    "user.created"
                } else {
                    "user.updated"
                }
                .into(),
            ),
            ..Default::default()
        };
        let t = Instant::now();
        let (rows, _) = muster.query_sync_log(env.id, &q, None, 100).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if rows.is_empty() {
            anyhow::bail!("the filtered page is empty");
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "filtered page of 100 (provider + action + one day): p50 {:.2} ms, p99 {:.2} ms",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
    let q_err = LogQuery {
        outcome: Some(Outcome::Error),
        ..Default::default()
    };
    let t = Instant::now();
    let (rows, _) = muster.query_sync_log(env.id, &q_err, None, 100).await?;
    println!(
        "errors page of {}: {:.2} ms",
        rows.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    // Ten pages deep by cursor.
    let t = Instant::now();
    let mut before = None;
    for _ in 0..10 {
        let (_, next) = muster
            .query_sync_log(env.id, &LogQuery::default(), before, 1000)
            .await?;
        before = next;
    }
    println!(
        "ten unfiltered pages of 1000 by cursor: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );

    // Full-range export to /dev/null, as `muster sync-log export` does it.
    let names = muster.provider_names(env.id).await?;
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create("/dev/null")?);
    out.write_all(csv_header().as_bytes())?;
    let (mut before, mut rows_out, mut bytes) = (None, 0u64, 0u64);
    loop {
        let (rows, next) = muster
            .query_sync_log(env.id, &LogQuery::default(), before, 1000)
            .await?;
        for (id, e) in &rows {
            let line = csv_line(*id, e, &names);
            bytes += line.len() as u64;
            out.write_all(line.as_bytes())?;
        }
        rows_out += rows.len() as u64;
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    out.flush()?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "full export: {rows_out} rows, {:.0} MiB of CSV in {:.1} s ({:.0} rows/s); peak RSS {:.1} MiB before, {:.1} MiB after",
        bytes as f64 / 1048576.0,
        secs,
        rows_out as f64 / secs,
        rss_before,
        peak_rss_mib()
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
