//! Group priority: with the SCIM groups method, a user in several mapped groups goes to the
//! organization of the entry with the highest priority (the lowest number; between groups of
//! one entry, the lowest group id, so the choice never depends on the order groups were read).
//! Administrators reorder the entries; priorities stay 1, 2, 3, ...

use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::GroupMappingId;
use crate::ids::ProviderId;
use crate::mapping::view::MappingView;
use crate::model::Actor;
use crate::muster::Muster;
use crate::store::Tx;
use crate::synclog::event::Event;
use crate::synclog::provider_entry;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

use crate::ids::{GroupId, OrgId};

/// The mapped group that decides a member's organization: of the user's groups that have an
/// entry, the one whose entry has the lowest priority number (ties: the lowest group id).
/// Returns the priority, the group and the entry's organization.
pub(crate) fn winning_group(
    groups: &[GroupId],
    entries: &HashMap<GroupId, (i64, OrgId)>,
) -> Option<(i64, GroupId, OrgId)> {
    groups
        .iter()
        .filter_map(|g| entries.get(g).map(|(p, o)| (*p, *g, *o)))
        .min_by_key(|(p, g, _)| (*p, *g))
}

impl Muster {
    pub(crate) async fn renumber(
        &self,
        tx: &mut Box<dyn Tx>,
        env: EnvironmentId,
        provider: ProviderId,
        order: &[GroupMappingId],
    ) -> CoreResult<()> {
        let entries = tx.group_org_mappings(env, provider).await?;
        for (i, id) in order.iter().enumerate() {
            if let Some(e) = entries.iter().find(|e| e.id == *id) {
                let priority = i as i64 + 1;
                if e.priority != priority {
                    let mut e = e.clone();
                    e.priority = priority;
                    tx.update_group_org_mapping(&e).await?;
                }
            }
        }
        Ok(())
    }

    /// Sets the priority order of the group-to-organization entries: `order` lists every entry,
    /// highest priority first.
    pub async fn reorder_group_mappings(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        order: &[GroupMappingId],
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        self.change_order(env, provider, actor, |current| {
            let have: BTreeSet<GroupMappingId> = current.iter().copied().collect();
            let given: BTreeSet<GroupMappingId> = order.iter().copied().collect();
            if have != given || order.len() != current.len() {
                return Err(CoreError::Invalid(format!(
                    "the order must list each of the provider's {} organization mapping entries exactly once",
                    current.len()
                )));
            }
            Ok(order.to_vec())
        })
        .await
    }

    /// Moves one entry a place up (towards priority 1) or down, in one transaction, so two
    /// administrators clicking at once each move the order they see now. At the top (or the
    /// bottom) it stays where it is.
    pub async fn move_group_mapping(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        id: GroupMappingId,
        up: bool,
        actor: &Actor,
    ) -> CoreResult<MappingView> {
        self.change_order(env, provider, actor, |mut order| {
            let i = order
                .iter()
                .position(|e| *e == id)
                .ok_or_else(|| CoreError::NotFound("no such mapping entry".into()))?;
            let j = moved_to(i, up, order.len());
            order.swap(i, j);
            Ok(order)
        })
        .await
    }

    /// Reads the entries' order, lets `reorder` decide the new one, saves and logs it: one
    /// transaction.
    async fn change_order(
        &self,
        env: EnvironmentId,
        provider: ProviderId,
        actor: &Actor,
        reorder: impl FnOnce(Vec<GroupMappingId>) -> CoreResult<Vec<GroupMappingId>>,
    ) -> CoreResult<MappingView> {
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let current = tx
            .group_org_mappings(env, provider)
            .await?
            .iter()
            .map(|e| e.id)
            .collect();
        let order = reorder(current)?;
        self.renumber(&mut tx, env, provider, &order).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            Event::MappingGroupPrioritiesChanged,
            json!({"order": order}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }
}

/// Where the entry at `i` of `len` goes when moved a place up or down.
fn moved_to(i: usize, up: bool, len: usize) -> usize {
    if up {
        i.saturating_sub(1)
    } else {
        (i + 1).min(len.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_stops_at_either_end() {
        assert_eq!(moved_to(0, true, 3), 0);
        assert_eq!(moved_to(1, true, 3), 0);
        assert_eq!(moved_to(1, false, 3), 2);
        assert_eq!(moved_to(2, false, 3), 2);
        assert_eq!(moved_to(0, false, 1), 0);
    }

    #[test]
    fn the_lowest_priority_number_wins_whatever_the_order() {
        let (sales, eng, all, other) = (
            GroupId::new(),
            GroupId::new(),
            GroupId::new(),
            GroupId::new(),
        );
        let (sales_org, eng_org) = (OrgId::new(), OrgId::new());
        let entries = HashMap::from([
            (sales, (2, sales_org)),
            (eng, (1, eng_org)),
            (all, (3, sales_org)),
        ]);
        for groups in [
            vec![sales, eng, all],
            vec![all, eng, sales],
            vec![other, eng],
        ] {
            assert_eq!(winning_group(&groups, &entries), Some((1, eng, eng_org)));
        }
        assert_eq!(
            winning_group(&[sales, all], &entries),
            Some((2, sales, sales_org))
        );
        assert_eq!(winning_group(&[other], &entries), None, "no mapped group");
        // Two groups in one entry share its priority: the lower id decides, not the order.
        let (a, b) = if sales < all {
            (sales, all)
        } else {
            (all, sales)
        };
        let tied = HashMap::from([(a, (1, sales_org)), (b, (1, eng_org))]);
        assert_eq!(winning_group(&[b, a], &tied), Some((1, a, sales_org)));
    }
}
