//! Why a user is where it is: what its provider's mappings want for it, worked out by the same
//! rules that place users ([`super::rules`]), so the account cannot disagree with them.

use crate::error::CoreResult;
use crate::ids::{EnvironmentId, GroupId};
use crate::mapping::placement::OrgCache;
use crate::mapping::rules::OrgWant;
use crate::model::{name_key as key, GroupRef, UserRecord};
use crate::muster::Muster;

/// What a provider's mappings want for one of its users, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingExplanation {
    /// Where the organization mapping puts the user, and why.
    pub org: String,
    /// Where the mapping would put the user, when that is not where it is now (an administrator
    /// moved it, or the mapping changed since it was placed): the organization's name.
    pub org_elsewhere: Option<String>,
    /// The roles role mapping gives the user, by name; `None` when role mapping has no say.
    pub roles: Option<Vec<String>>,
}

impl MappingExplanation {
    /// The explanation as lines a person reads (the console's user page, `muster user show`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("Organization: {}", self.org)];
        if let Some(there) = &self.org_elsewhere {
            out.push(format!(
                "The user is not in {there} now (an administrator moved it, or the mapping \
                 changed since): the provider's next update of the user, or a re-apply, puts it \
                 there."
            ));
        }
        out.push(match &self.roles {
            None => "Roles: role mapping has no say for this provider.".into(),
            Some(r) if r.is_empty() => {
                "Roles: role mapping gives none (the organization's defaults apply).".into()
            }
            Some(r) => format!("Roles: {}", r.join(", ")),
        });
        out
    }
}

impl Muster {
    /// Why a provisioned user is in its organization and holds its mapped roles: what its
    /// provider's mappings want for it now. `None` for a local user (no mapping applies).
    pub async fn explain_mapping(
        &self,
        env: EnvironmentId,
        user: &UserRecord,
        groups: &[GroupRef],
    ) -> CoreResult<Option<MappingExplanation>> {
        let Some(provider) = user.provider_id else {
            return Ok(None);
        };
        let mut tx = self.store.read().await?;
        // As creating a user reads them: one statement, the organizations kept between calls.
        let (rules, orgs) = self.rules_and_orgs(&mut tx, env, provider).await?;
        let group_ids: Vec<GroupId> = groups.iter().map(|g| g.group_id).collect();
        let mut cache = OrgCache::default();
        let name_of = |id| {
            orgs.get(id)
                .map(|o| o.name.clone())
                .unwrap_or_else(|_| id.to_string())
        };
        let (org, org_elsewhere) = match rules.want_org(&user.resource, &group_ids, false) {
            OrgWant::Keep => (
                match rules.has_org_mapping() {
                    true => "single organization: users are placed once, when created, and stay \
                             where they are"
                        .to_string(),
                    false => "no organization mapping: the user stays where it is".to_string(),
                },
                None,
            ),
            OrgWant::Org { id, why, error } => {
                let reason = cache.reason(&mut tx, env, why).await?;
                let mut said = format!("{}: {reason}", name_of(id));
                if let Some(e) = error {
                    said.push_str(&format!(" ({e})"));
                }
                (said, (id != user.org_id).then(|| name_of(id)))
            }
            OrgWant::Named { parent, name, why } => {
                let existing = orgs
                    .by_id
                    .values()
                    .find(|o| o.parent_id == Some(parent) && key(&o.name) == key(&name))
                    .map(|o| o.id);
                let elsewhere = (existing != Some(user.org_id)).then(|| name.clone());
                (
                    format!("{name} (under {}): {why}", name_of(parent)),
                    elsewhere,
                )
            }
        };
        let current = tx.user_roles(env, &[user.id]).await?;
        let current: Vec<_> = current.into_iter().map(|(_, r, s)| (r, s)).collect();
        let roles = match rules.want_roles(&group_ids, &current) {
            None => None,
            Some(ids) => {
                let names = cache.role_names(&mut tx, env).await?;
                let mut named: Vec<String> = ids
                    .iter()
                    .map(|r| names.get(r).cloned().unwrap_or_else(|| r.to_string()))
                    .collect();
                named.sort_by_cached_key(|n| n.to_lowercase());
                Some(named)
            }
        };
        Ok(Some(MappingExplanation {
            org,
            org_elsewhere,
            roles,
        }))
    }
}
