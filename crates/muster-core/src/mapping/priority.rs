use crate::error::CoreError;
use crate::error::CoreResult;
use crate::ids::EnvironmentId;
use crate::ids::GroupMappingId;
use crate::ids::ProviderId;
use crate::mapping::config::provider_entry;
use crate::mapping::config::MappingView;
use crate::model::Actor;
use crate::muster::Muster;
use crate::store::Tx;
use serde_json::json;
use std::collections::BTreeSet;

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
        let now = self.now();
        let mut tx = self.store.write().await?;
        let p = self.mapping_provider(&mut tx, env, provider).await?;
        let entries = tx.group_org_mappings(env, provider).await?;
        let have: BTreeSet<GroupMappingId> = entries.iter().map(|e| e.id).collect();
        let given: BTreeSet<GroupMappingId> = order.iter().copied().collect();
        if have != given || order.len() != entries.len() {
            return Err(CoreError::Invalid(format!(
                "the order must list each of the provider's {} organization mapping entries exactly once",
                entries.len()
            )));
        }
        self.renumber(&mut tx, env, provider, order).await?;
        let entry = provider_entry(
            env,
            now,
            actor,
            &p,
            "mapping.group_priorities_changed",
            json!({"order": order}),
        );
        self.log_and_view(tx, env, provider, entry).await
    }
}
