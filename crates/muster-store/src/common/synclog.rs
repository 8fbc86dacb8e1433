//! The sync log: append, query, retention.

use super::*;

const LOG_COLS: &str =
    "environment_id, at, provider_id, actor_kind, actor_id, actor_name, action, subject_kind, \
     subject_id, subject_name, details, outcome, message";

fn actor_columns(a: &Actor) -> (&'static str, Option<String>, Option<String>) {
    match a {
        Actor::Provider { id } => ("provider", Some(id.to_string()), None),
        Actor::Admin { name } => ("admin", None, Some(name.clone())),
        Actor::System => ("system", None, None),
    }
}

fn log_from<R: Cols + ?Sized>(row: &R) -> StoreResult<SyncLogEntry> {
    let kind: String = get(row, "actor_kind")?;
    let actor_id: Option<String> = get(row, "actor_id")?;
    let actor_name: Option<String> = get(row, "actor_name")?;
    let actor = match kind.as_str() {
        "provider" => Actor::Provider {
            id: actor_id
                .as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("log entry without its provider".into()))?,
        },
        "admin" => Actor::Admin {
            name: actor_name.unwrap_or_default(),
        },
        _ => Actor::System,
    };
    let details: String = get(row, "details")?;
    let outcome: String = get(row, "outcome")?;
    let action: String = get(row, "action")?;
    Ok(SyncLogEntry {
        environment_id: EnvironmentId(get(row, "environment_id")?),
        at: ts(get(row, "at")?),
        provider_id: get::<Option<Uuid>, _>(row, "provider_id")?.map(ProviderId),
        actor,
        action: Event::parse(&action)
            .ok_or_else(|| StoreError::Corrupt(format!("sync log action '{action}'")))?,
        subject_kind: get(row, "subject_kind")?,
        subject_id: get(row, "subject_id")?,
        subject_name: get(row, "subject_name")?,
        details: serde_json::from_str(&details).unwrap_or(Value::Null),
        outcome: if outcome == "error" {
            Outcome::Error
        } else {
            Outcome::Success
        },
        message: get(row, "message")?,
    })
}

impl Stmt {
    /// `insert into sync_log ... values ...` for `entries` (at most [`LOG_CHUNK`]).
    pub(super) fn push_log_rows(&mut self, entries: &[SyncLogEntry]) {
        self.push(
            "insert into sync_log (environment_id, at, provider_id, actor_kind, actor_id, actor_name, action, \
             subject_kind, subject_id, subject_name, details, outcome, message) ",
        );
        self.push_values(entries, |mut b, e| {
            let (kind, id, name) = actor_columns(&e.actor);
            b.push_bind(e.environment_id.0)
                .push_bind(e.at.0)
                .push_bind(e.provider_id.map(|p| p.0))
                .push_bind(kind)
                .push_bind(id)
                .push_bind(name)
                .push_bind(e.action.as_str().to_string())
                .push_bind(e.subject_kind.clone())
                .push_bind(e.subject_id.clone())
                .push_bind(e.subject_name.clone())
                .push_bind(e.details.to_string())
                .push_bind(e.outcome.as_str())
                .push_bind(e.message.clone());
        });
    }
}

#[async_trait]
impl SyncLogStore for DbTx {
    async fn append_log(&mut self, entries: &[SyncLogEntry]) -> StoreResult<()> {
        crate::stats::SYNC_LOG_ENTRIES
            .fetch_add(entries.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if let DbTx::Tx(w) = self {
            // PostgreSQL: written with the events at commit (`events.rs`).
            w.log.extend_from_slice(entries);
            return Ok(());
        }
        for chunk in entries.chunks(LOG_CHUNK) {
            let mut qb = Stmt::new("");
            qb.push_log_rows(chunk);
            self.exec(&qb).await?;
        }
        Ok(())
    }

    async fn query_log(
        &mut self,
        env: EnvironmentId,
        q: &LogQuery,
        before: Option<(Timestamp, i64)>,
        limit: u64,
    ) -> StoreResult<Vec<(i64, SyncLogEntry)>> {
        let mut qb = Stmt::new(format!(
            "select sync_log_id, {LOG_COLS} from sync_log where environment_id = "
        ));
        qb.push_bind(env.0);
        if let Some(t) = q.since {
            qb.push(" and at >= ").push_bind(t.0);
        }
        if let Some(t) = q.until {
            qb.push(" and at < ").push_bind(t.0);
        }
        if let Some(p) = q.provider {
            qb.push(" and provider_id = ").push_bind(p.0);
        }
        if let Some(s) = &q.subject {
            qb.push(" and subject_id = ").push_bind(s.clone());
        }
        match q.action.as_deref() {
            Some(a) if a.ends_with('.') => {
                // A family: `user.` is every user action. `.` never needs escaping in LIKE.
                qb.push(" and action like ")
                    .push_bind(format!("{}%", a.replace(['%', '_'], "")));
            }
            Some(a) => {
                qb.push(" and action = ").push_bind(a.to_string());
            }
            None => {}
        }
        if let Some(o) = q.outcome {
            qb.push(" and outcome = ").push_bind(o.as_str());
        }
        if let Some((at, id)) = before {
            // A range on `at` the index can start from, then the tie-break on the id.
            qb.push(" and at <= ")
                .push_bind(at.0)
                .push(" and (at < ")
                .push_bind(at.0)
                .push(" or sync_log_id < ")
                .push_bind(id)
                .push(")");
        }
        qb.push(" order by at desc, sync_log_id desc limit ")
            .push_bind(limit as i64);
        let rows = self.rows(&qb).await?;
        rows.iter()
            .map(|r| Ok((get::<i64, _>(r, "sync_log_id")?, log_from(r)?)))
            .collect()
    }

    async fn count_log_errors(
        &mut self,
        env: EnvironmentId,
        provider: ProviderId,
        since: Timestamp,
    ) -> StoreResult<u64> {
        let q = Stmt::new("select count(*) as n from sync_log where environment_id = $1 and provider_id = $2 and outcome = 'error' and at >= $3").arg(env.0).arg(provider.0).arg(since.0);
        self.count(&q).await
    }

    async fn delete_log_before(&mut self, cutoff: Timestamp, limit: u64) -> StoreResult<u64> {
        let done = self.exec(&Stmt::new("delete from sync_log where sync_log_id in (select sync_log_id from sync_log where at < $1 order by at limit $2)").arg(cutoff.0).arg(limit as i64)).await?;
        Ok(done)
    }

    async fn recent_log(
        &mut self,
        env: EnvironmentId,
        limit: u64,
    ) -> StoreResult<Vec<SyncLogEntry>> {
        let rows = self.rows(&Stmt::new(format!(
            "select {LOG_COLS} from sync_log where environment_id = $1 order by at desc, sync_log_id desc limit $2"
        )).arg(env.0).arg(limit as i64)).await?;
        rows.iter().map(log_from).collect()
    }
}
