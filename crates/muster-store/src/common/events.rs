//! The event feed: events written with their change, `seq` in commit order, read by cursor,
//! pruned by retention from the oldest.
//!
//! Ordering: `seq` comes from the one row of `event_seq`, incremented by the number of events as
//! the last statement of the transaction. On PostgreSQL that `UPDATE` takes the row's lock,
//! which is held until COMMIT ends: a second transaction that wants a `seq` waits until the
//! first has committed and become visible, so `seq`s become visible in increasing order and a
//! reader that has seen N can never later find a smaller one (no late gap). The lock is the last
//! one any transaction takes, so it cannot be part of a deadlock, and it is held only for one
//! statement (the `UPDATE` and the `INSERT` together, `insert_events_at_commit`) and the COMMIT. On SQLite the single writer already commits in order;
//! events get their `seq` when queued.

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

/// An event's values, after `number`: its `seq`, or its place in a batch.
fn push_event(mut b: Separated<'_>, number: i64, e: &FeedEvent) {
    b.push_bind(number)
        .push_bind(e.id)
        .push_bind(e.environment_id.0)
        .push_bind(e.kind.as_str())
        .push_bind(e.occurred_at.0)
        .push_bind(e.provider_id.map(|p| p.0))
        .push_bind(actor_json(&e.actor))
        .push_bind(e.data.to_string());
}

/// Rows per INSERT statement.
const INSERT_CHUNK: usize = 200;

impl DbTx {
    /// PostgreSQL, at commit: takes the `seq`s and writes the events in one statement (a
    /// data-modifying `with`), so the sequence row's lock, which every writer of events waits
    /// for, is held for one round trip and the COMMIT rather than two and the COMMIT. Larger
    /// batches take the general path.
    pub(super) async fn insert_events_at_commit(
        &mut self,
        events: &[FeedEvent],
    ) -> StoreResult<()> {
        if events.len() > INSERT_CHUNK {
            return self.insert_events(events).await;
        }
        let n = events.len() as i64;
        let mut qb = Stmt::new("with s as (update event_seq set last_seq = last_seq + ");
        qb.bind(n).push(
            " returning last_seq) \
             insert into event (seq, event_id, environment_id, type, occurred_at, provider_id, actor, data) \
             select s.last_seq - ",
        );
        qb.bind(n).push(
            " + v.ord, v.event_id, v.environment_id, v.type, v.occurred_at, v.provider_id, v.actor, v.data \
             from s, (",
        );
        let mut ord = 0_i64;
        qb.push_values(events, |b, e| {
            ord += 1;
            push_event(b, ord, e);
        });
        qb.push(
            ") as v(ord, event_id, environment_id, type, occurred_at, provider_id, actor, data)",
        );
        self.exec(&qb).await?;
        crate::stats::EVENTS_WRITTEN.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Takes `events.len()` `seq`s and writes the events with them.
    pub(super) async fn insert_events(&mut self, events: &[FeedEvent]) -> StoreResult<()> {
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
        let first = last - n + 1;
        let mut seq = first;
        for chunk in events.chunks(INSERT_CHUNK) {
            let mut qb = Stmt::new(
                "insert into event (seq, event_id, environment_id, type, occurred_at, provider_id, actor, data) ",
            );
            qb.push_values(chunk, |b, e| {
                push_event(b, seq, e);
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
            DbTx::Tx(_, _, pending) => {
                pending.extend(events);
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
        // what is gone. Times follow seq closely (seq is taken at commit), so the prefix is what
        // is older than the cutoff.
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
