//! The mass-deactivation guard (docs/notifications.md). When a provider turns off more than a
//! share of its active users, and more than a number of them, within a window (by default more
//! than 10% and more than 25 within an hour), Muster goes on answering it as usual and blocking
//! the users as the delay rule says, but holds every deactivation from that provider and tells
//! the administrators at once. An administrator then releases the hold (the deactivations
//! proceed on their schedule, at once when due) or restores the users (unblocked, their
//! deactivations cancelled; the provider's next update wins as usual).
//!
//! The count is the provider's `user.blocked` entries in the sync log within the window, plus
//! the turn-off being decided; the base is the provider's active users plus those turned off in
//! the window, that is about the active users when the window opened. The check runs in the
//! transaction of the turn-off, so the request that crosses the threshold is itself held.

use crate::clock::Timestamp;
use crate::error::{CoreError, CoreResult};
use crate::ids::{EnvironmentId, ProviderId};
use crate::model::{
    Actor, Outcome, ProviderCtx, ProviderGuard, SyncLogEntry, UserRecord, UserStatus,
};
use crate::muster::Muster;
use crate::notify::{at, kinds, Audience};
use crate::store::Tx;
use crate::synclog::event::Event;
use crate::users::lifecycle::{self, Cause, Transition};
use serde_json::json;

/// Users restored per transaction.
const RESTORE_BATCH: u64 = 500;

/// What an administrator sets on a guard.
#[derive(Debug, Clone, Default)]
pub struct GuardInput {
    /// On or off.
    pub enabled: Option<bool>,
    /// The share of active users, in percent (1 to 100).
    pub percent: Option<i64>,
    /// The number of users (0 or more).
    pub min_users: Option<i64>,
    /// The window, in seconds (60 to 7 days).
    pub window_secs: Option<i64>,
}

async fn guard_of(
    tx: &mut Box<dyn Tx>,
    env: EnvironmentId,
    p: ProviderId,
) -> CoreResult<ProviderGuard> {
    Ok(tx
        .find_guard(p)
        .await?
        .unwrap_or_else(|| ProviderGuard::default_for(env, p)))
}

impl Muster {
    /// The provider turns `u` off: checks the guard first (tripping it when this turn-off
    /// crosses the threshold), then applies the lifecycle with its deactivation held or not.
    /// `counted_active` says whether `u` is among the provider's active users in the database
    /// now (false for a user being created turned off).
    pub(crate) async fn provider_turn_off(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        u: &mut UserRecord,
        now: Timestamp,
        counted_active: bool,
    ) -> CoreResult<Vec<Transition>> {
        let mut g = guard_of(tx, ctx.env(), ctx.id()).await?;
        let mut held = g.held_since.is_some();
        if !held && g.enabled && u.status == UserStatus::Active {
            let since = now.plus_secs(-g.window_secs);
            let turned_off = tx.count_turn_offs(ctx.env(), ctx.id(), since).await? + 1;
            let active = tx.count_active_users(ctx.env(), ctx.id()).await?;
            let base = active + turned_off - u64::from(counted_active);
            if g.trips(turned_off, base) {
                held = true;
                g.held_since = Some(now);
                g.held_turned_off = turned_off as i64;
                tx.save_guard(&g).await?;
                self.trip(tx, ctx, &g, turned_off, base, now).await?;
            }
        }
        Ok(lifecycle::turn_off(
            u,
            ctx.provider.deactivation_delay_secs,
            held,
            now,
        ))
    }

    async fn trip(
        &self,
        tx: &mut Box<dyn Tx>,
        ctx: &ProviderCtx,
        g: &ProviderGuard,
        turned_off: u64,
        base: u64,
        now: Timestamp,
    ) -> CoreResult<()> {
        let data = json!({
            "provider": ctx.provider.name, "providerId": ctx.id().to_string(),
            "turnedOff": turned_off, "activeBefore": base, "percent": g.percent,
            "minUsers": g.min_users, "windowSecs": g.window_secs, "at": at(now),
            "delaySecs": ctx.provider.deactivation_delay_secs,
        });
        self.record(
            tx,
            &[SyncLogEntry {
                environment_id: ctx.env(),
                at: now,
                provider_id: Some(ctx.id()),
                actor: Actor::System,
                action: Event::ProviderDeactivationsHeld,
                subject_kind: Some("provider".into()),
                subject_id: Some(ctx.id().to_string()),
                subject_name: Some(ctx.provider.name.clone()),
                details: data.clone(),
                outcome: Outcome::Success,
                message: Some(format!(
                    "{} turned off {turned_off} of about {base} active users within {} minutes: \
                     every deactivation from it is held until an administrator releases the hold \
                     or restores the users",
                    ctx.provider.name,
                    g.window_secs / 60
                )),
            }],
        )
        .await?;
        self.notify(
            tx,
            ctx.env(),
            Audience::ProviderManagers,
            kinds::GUARD_TRIPPED,
            &data,
        )
        .await?;
        // For whoever watches the server's log rather than its mail or metrics. Written in the
        // transaction of the turn-off: should it fail, the request fails and says so too.
        tracing::warn!(
            provider = %ctx.id(),
            provider_name = %ctx.provider.name,
            turned_off,
            active_before = base,
            window_minutes = g.window_secs / 60,
            "mass-deactivation guard tripped: every deactivation from this provider is held until an administrator releases the hold or restores the users (console: {}/console/providers/{}/guard)",
            self.settings.public_url,
            ctx.id()
        );
        Ok(())
    }

    /// A provider's guard (the defaults when never set).
    pub async fn provider_guard(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
    ) -> CoreResult<ProviderGuard> {
        let mut tx = self.store.read().await?;
        self.find_provider_in(&mut tx, env, provider).await?;
        guard_of(&mut tx, env, provider).await
    }

    /// The guards that hold deactivations now.
    pub async fn held_guards(&self, env: EnvironmentId) -> CoreResult<Vec<ProviderGuard>> {
        let mut tx = self.store.read().await?;
        Ok(tx.held_guards(env).await?)
    }

    /// Changes a provider's guard settings.
    pub async fn set_provider_guard(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        input: &GuardInput,
        actor: &Actor,
    ) -> CoreResult<ProviderGuard> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.find_provider_in(&mut tx, env, provider).await?;
        let mut g = guard_of(&mut tx, env, provider).await?;
        let range = |v: Option<i64>, lo: i64, hi: i64, what: &str| match v {
            Some(x) if !(lo..=hi).contains(&x) => Err(CoreError::Invalid(format!(
                "{what} is {lo} to {hi}, not {x}"
            ))),
            _ => Ok(v),
        };
        if let Some(v) = range(input.percent, 1, 100, "the percentage")? {
            g.percent = v;
        }
        if let Some(v) = range(input.min_users, 0, 1_000_000, "the number of users")? {
            g.min_users = v;
        }
        if let Some(v) = range(input.window_secs, 60, 7 * 86_400, "the window (seconds)")? {
            g.window_secs = v;
        }
        if let Some(on) = input.enabled {
            g.enabled = on;
        }
        tx.save_guard(&g).await?;
        self.record(
            &mut tx,
            &[crate::synclog::admin_entry(
                env,
                now,
                actor,
                Event::ProviderGuardUpdated,
                ("provider", provider.to_string(), &p.name),
                json!({"enabled": g.enabled, "percent": g.percent, "minUsers": g.min_users, "windowSecs": g.window_secs}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(g)
    }

    /// The provider's users whose deactivation is scheduled (held while the guard holds),
    /// soonest first.
    pub async fn pending_deactivations(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        limit: u64,
    ) -> CoreResult<Vec<UserRecord>> {
        let mut tx = self.store.read().await?;
        Ok(tx
            .pending_deactivations(env, provider, limit.clamp(1, 10_000))
            .await?)
    }

    /// Releases the hold: the provider's deactivations proceed on their schedule (those due
    /// at the scheduler's next tick).
    pub async fn release_guard(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        actor: &Actor,
    ) -> CoreResult<ProviderGuard> {
        self.end_hold(env, provider, actor, Event::ProviderHoldReleased, 0)
            .await
    }

    async fn end_hold(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        actor: &Actor,
        event: Event,
        restored: u64,
    ) -> CoreResult<ProviderGuard> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.find_provider_in(&mut tx, env, provider).await?;
        let mut g = guard_of(&mut tx, env, provider).await?;
        let Some(since) = g.held_since else {
            return Err(CoreError::Invalid(format!(
                "{} has no deactivations held",
                p.name
            )));
        };
        g.held_since = None;
        g.held_turned_off = 0;
        tx.save_guard(&g).await?;
        let pending = tx
            .pending_deactivations(env, provider, 1_000_000)
            .await?
            .len();
        self.record(
            &mut tx,
            &[SyncLogEntry {
                provider_id: Some(provider),
                ..crate::synclog::admin_entry(
                    env,
                    now,
                    actor,
                    event,
                    ("provider", provider.to_string(), &p.name),
                    json!({"heldSince": at(since), "restored": restored, "deactivationsProceeding": pending}),
                )
            }],
        )
        .await?;
        tx.commit().await?;
        Ok(g)
    }

    /// Restores the users the guard holds: each blocked user of the provider with a
    /// deactivation pending is unblocked and the deactivation cancelled (the provider's next
    /// update wins as usual); then the hold ends. Returns how many were restored.
    pub async fn restore_held_users(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        actor: &Actor,
    ) -> CoreResult<u64> {
        let g = self.provider_guard(env, provider).await?;
        if g.held_since.is_none() {
            let p = self.get_provider(env, provider).await?;
            return Err(CoreError::Invalid(format!(
                "{} has no deactivations held",
                p.name
            )));
        }
        let mut restored = 0;
        loop {
            let now = self.now();
            let mut tx = self.store.write().await?;
            let batch = tx
                .pending_deactivations(env, provider, RESTORE_BATCH)
                .await?;
            if batch.is_empty() {
                break;
            }
            let mut log = Vec::new();
            for mut u in batch {
                let expected = u.version;
                let ts = match lifecycle::apply(&mut u, Cause::Unblock, now) {
                    Ok(ts) if !ts.is_empty() => ts,
                    // Not blocked (already deactivated or active): only the schedule goes.
                    _ => {
                        u.deactivate_at = None;
                        Vec::new()
                    }
                };
                u.version += 1;
                u.updated_at = now;
                if !tx.update_user(&u, expected).await? {
                    continue;
                }
                for t in ts {
                    log.push(SyncLogEntry {
                        environment_id: env,
                        at: now,
                        provider_id: Some(provider),
                        actor: actor.clone(),
                        action: t.action(),
                        subject_kind: Some("user".into()),
                        subject_id: Some(u.id.to_string()),
                        subject_name: Some(u.user_name.clone()),
                        details: t.details(),
                        outcome: Outcome::Success,
                        message: Some("restored after the mass-deactivation guard held it".into()),
                    });
                }
                restored += 1;
            }
            self.record(&mut tx, &log).await?;
            tx.commit().await?;
        }
        self.end_hold(env, provider, actor, Event::ProviderUsersRestored, restored)
            .await?;
        Ok(restored)
    }
}
