//! The event feed: events written with their change, numbered by `seq` in the order they
//! became visible, read by cursor, pruned by retention from the oldest.
//!
//! The feed's promise is that a reader who has seen `seq` N never later finds an event below N
//! (no late gap), so a cursor is one number.
//!
//! - **SQLite** has one writer, which commits in order: events get their `seq` from the one row
//!   of `event_seq` when they are queued, inside the transaction.
//! - **PostgreSQL** commits transactions side by side. Numbering inside the transaction would
//!   need the `event_seq` row's lock held through COMMIT, one WAL flush after another: every
//!   writer of the process would wait in one line (measured: 72 of 100 active backends waiting
//!   for it under eight clients). Instead a transaction writes its events to `event_pending`
//!   (an identity key, no lock) and, once committed, wakes the store's sequencer. The sequencer
//!   (`postgres.rs`), one at a time across every Muster process by an advisory lock, moves what
//!   has committed from `event_pending` into `event`, numbering it after the last `seq`
//!   (`SEQUENCE_PENDING`). Only committed events are ever numbered, and numbers are only ever
//!   given after the last one, so no event can appear behind a cursor. A change that committed
//!   before another began is numbered before it (its pending key is smaller, or it was moved
//!   first). Readers of the feed settle the pending events first (`Store::settle_events`), so a
//!   caller always sees its own writes.

use super::*;
use serde_json::json;

fn actor_json(a: &Actor) -> String {
    match a {
        Actor::Provider { id } => json!({"kind": "provider", "id": id.to_string()}),
        Actor::Admin { name } => json!({"kind": "admin", "name": name}),
        Actor::System => json!({"kind": "system"}),
    }
    .to_string()
}

fn actor_from(text: &str) -> StoreResult<Actor> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt("an event's actor is not JSON".into()))?;
    Ok(match v["kind"].as_str() {
        Some("provider") => Actor::Provider {
            id: v["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("an event's provider actor has no id".into()))?,
        },
        Some("admin") => Actor::Admin {
            name: v["name"].as_str().unwrap_or_default().to_string(),
        },
        _ => Actor::System,
    })
}

fn event_from<R: Cols + ?Sized>(row: &R) -> StoreResult<(i64, FeedEvent)> {
    let actor: String = get(row, "actor")?;
    let data: String = get(row, "data")?;
    Ok((
        get(row, "seq")?,
        FeedEvent {
            id: get(row, "event_id")?,
            environment_id: EnvironmentId(get(row, "environment_id")?),
            kind: get(row, "type")?,
            occurred_at: ts(get(row, "occurred_at")?),
            provider_id: get::<Option<Uuid>, _>(row, "provider_id")?.map(ProviderId),
            actor: actor_from(&actor)?,
            data: serde_json::from_str(&data)
                .map_err(|_| StoreError::Corrupt("an event's data is not JSON".into()))?,
        },
    ))
}

/// An event's values.
fn push_event(mut b: Separated<'_>, e: &FeedEvent) {
    b.push_bind(e.id)
        .push_bind(e.environment_id.0)
        .push_bind(e.kind.as_str())
        .push_bind(e.occurred_at.0)
        .push_bind(e.provider_id.map(|p| p.0))
        .push_bind(actor_json(&e.actor))
        .push_bind(e.data.to_string());
}

/// Rows per INSERT statement.
const INSERT_CHUNK: usize = 200;

impl Stmt {
    /// `insert into event_pending ... values ...` for `events` (at most [`INSERT_CHUNK`]).
    fn push_pending_rows(&mut self, events: &[FeedEvent]) {
        self.push(
            "insert into event_pending (event_id, environment_id, type, occurred_at, provider_id, actor, data) ",
        );
        self.push_values(events, push_event);
    }
}

impl DbTx {
    // The next three are PostgreSQL's (its commit and `postgres.rs`'s sequencer): SQLite
    // numbers events in the transaction.
    /// How many pending events one step of PostgreSQL's sequencer moves.
    #[allow(dead_code)]
    pub const SEQUENCE_BATCH: i64 = 1_000;

    /// PostgreSQL's sequencer: moves the oldest pending events (at most `$1`), all committed, into
    /// the feed, numbered after the last `seq` in the order they were written; answers how many.
    /// Run under the sequencer's advisory lock in a statement of its own; the sequence row is
    /// written only when there was something to move. The base `seq` is a scalar subquery, not
    /// a join: with a join the planner's estimate (no statistics on the one-row table) ran to
    /// millions and PostgreSQL JIT-compiled every step, 165 ms each (`explain analyze`); now it
    /// is linear in the batch, about 1,500 for 1,000 rows.
    #[allow(dead_code)]
    pub const SEQUENCE_PENDING: &str = "with moved as ( \
           delete from event_pending where pending_id in \
             (select pending_id from event_pending order by pending_id limit $1) \
           returning pending_id, event_id, environment_id, type, occurred_at, provider_id, actor, data), \
         s as (update event_seq set last_seq = last_seq + (select count(*) from moved) \
           where exists (select 1 from moved) \
           returning last_seq - (select count(*) from moved) as base), \
         numbered as ( \
           insert into event (seq, event_id, environment_id, type, occurred_at, provider_id, actor, data) \
           select (select base from s) + row_number() over (order by m.pending_id), m.event_id, \
             m.environment_id, m.type, m.occurred_at, m.provider_id, m.actor, m.data \
           from moved m \
           returning 1) \
         select count(*) as moved from numbered";

    /// PostgreSQL, just before COMMIT: writes the transaction's sync log entries, and its events
    /// to `event_pending`, where the sequencer numbers them once they have committed. The usual
    /// change (a few entries, their events) is one statement.
    #[allow(dead_code)]
    pub(super) async fn write_outbox(
        t: &mut DbConn,
        log: &[SyncLogEntry],
        events: &[FeedEvent],
    ) -> StoreResult<()> {
        let together = !log.is_empty()
            && log.len() <= LOG_CHUNK
            && !events.is_empty()
            && events.len() <= INSERT_CHUNK;
        if together {
            let mut qb = Stmt::new("with logged as (");
            qb.push_log_rows(log);
            qb.push(") ");
            qb.push_pending_rows(events);
            qb.query().execute(&mut *t).await.map_err(db_err)?;
        } else {
            for chunk in log.chunks(LOG_CHUNK) {
                let mut qb = Stmt::new("");
                qb.push_log_rows(chunk);
                qb.query().execute(&mut *t).await.map_err(db_err)?;
            }
            for chunk in events.chunks(INSERT_CHUNK) {
                let mut qb = Stmt::new("");
                qb.push_pending_rows(chunk);
                qb.query().execute(&mut *t).await.map_err(db_err)?;
            }
        }
        crate::stats::EVENTS_WRITTEN
            .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// SQLite, in the transaction: takes `events.len()` `seq`s and writes the events with them.
    async fn insert_events(&mut self, events: &[FeedEvent]) -> StoreResult<()> {
        let n = events.len() as i64;
        let last: i64 = get(
            &self
                .one(
                    &Stmt::new("update event_seq set last_seq = last_seq + $1 returning last_seq")
                        .arg(n),
                )
                .await?,
            "last_seq",
        )?;
        let mut seq = last - n + 1;
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut qb = Stmt::new(
                "insert into event (seq, event_id, environment_id, type, occurred_at, provider_id, actor, data) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(seq);
                push_event(b, e);
                seq += 1;
            });
            self.exec(&qb).await?;
        }
        crate::stats::EVENTS_WRITTEN.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl EventStore for DbTx {
    async fn queue_events(&mut self, events: Vec<FeedEvent>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        match self {
            DbTx::Tx(w) => {
                w.events.extend(events);
                Ok(())
            }
            DbTx::Held(h) if h.is_write() => {
                h.wrote_events();
                self.insert_events(&events).await
            }
            _ => Err(StoreError::Database(Box::new(std::io::Error::other(
                "events are written in a write transaction",
            )))),
        }
    }

    async fn events_after(
        &mut self,
        env: EnvironmentId,
        after: i64,
        limit: u64,
        types: &[String],
    ) -> StoreResult<Vec<(i64, FeedEvent)>> {
        let mut qb = Stmt::new(
            "select seq, event_id, environment_id, type, occurred_at, provider_id, actor, data \
             from event where environment_id = ",
        );
        qb.push_bind(env.0);
        qb.push(" and seq > ").push_bind(after);
        if !types.is_empty() {
            qb.push(" and (");
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    qb.push(" or ");
                }
                match t.strip_suffix('.') {
                    // A family: every type it starts. Families are checked names (letters
                    // only), so no LIKE wildcard can be in one.
                    Some(family) => {
                        qb.push("type like ").push_bind(format!("{family}.%"));
                    }
                    None => {
                        qb.push("type = ").push_bind(t.as_str());
                    }
                }
            }
            qb.push(")");
        }
        qb.push(" order by seq limit ").push_bind(limit as i64);
        let rows = self.rows(&qb).await?;
        rows.iter().map(event_from).collect()
    }

    async fn event_head(&mut self) -> StoreResult<i64> {
        get(
            &self
                .one(&Stmt::new("select last_seq from event_seq"))
                .await?,
            "last_seq",
        )
    }

    async fn event_horizon(&mut self) -> StoreResult<i64> {
        get(
            &self
                .one(&Stmt::new("select pruned_through from event_horizon"))
                .await?,
            "pruned_through",
        )
    }

    async fn prune_events(&mut self, cutoff: Timestamp, limit: u64) -> StoreResult<u64> {
        // The oldest `limit` events in seq order (the primary key), up to the first one still
        // kept: retention always removes a prefix of the feed, so `pruned_through` says exactly
        // what is gone. Times follow seq closely (seq is given at or just after commit), so the
        // prefix is what is older than the cutoff.
        let rows = self
            .rows(
                &Stmt::new("select seq, occurred_at from event order by seq limit $1")
                    .arg(limit as i64),
            )
            .await?;
        let mut through = None;
        for r in &rows {
            let at: i64 = get(r, "occurred_at")?;
            if at >= cutoff.0 {
                break;
            }
            through = Some(get::<i64, _>(r, "seq")?);
        }
        let Some(through) = through else {
            return Ok(0);
        };
        let deleted = self
            .exec(&Stmt::new("delete from event where seq <= $1").arg(through))
            .await?;
        if deleted > 0 {
            self.exec(
                &Stmt::new(
                    "update event_horizon set pruned_through = $1 where pruned_through < $1",
                )
                .arg(through),
            )
            .await?;
        }
        Ok(deleted)
    }
}
