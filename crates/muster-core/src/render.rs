//! Users and groups rendered as SCIM resources (RFC 7643 §4), with their `meta`, and the
//! comparison of two versions that the sync log records.

use crate::groups::GroupView;
use crate::model::ProviderCtx;
use crate::muster::Muster;
use crate::users::UserView;
use muster_scim::schema::GROUP_RESOURCE;
use muster_scim::schema::USER_RESOURCE;
use muster_scim::version::etag;
use serde_json::json;
use serde_json::Map;
use serde_json::Value;

impl Muster {
    /// Renders a user as its SCIM resource (RFC 7643 §4.1), with `meta` and, if loaded, `groups`.
    pub fn render_user(&self, ctx: &ProviderCtx, v: &UserView) -> Map<String, Value> {
        let u = &v.user;
        let mut out = Map::new();
        out.insert(
            "schemas".into(),
            u.resource
                .get("schemas")
                .cloned()
                .unwrap_or_else(|| json!([USER_RESOURCE.schema.id])),
        );
        out.insert("id".into(), Value::String(u.id.to_string()));
        for (k, val) in &u.resource {
            if k != "schemas" {
                out.insert(k.clone(), val.clone());
            }
        }
        if let Some(groups) = &v.groups {
            if !groups.is_empty() {
                let list: Vec<Value> = groups
                    .iter()
                    .map(|g| {
                        json!({"value": g.group_id.to_string(), "$ref": format!("{}/Groups/{}", ctx.base_url, g.group_id),
                               "display": g.display, "type": "direct"})
                    })
                    .collect();
                out.insert("groups".into(), Value::Array(list));
            }
        }
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": u.created_at.to_rfc3339(),
                "lastModified": u.updated_at.to_rfc3339(),
                "location": format!("{}/Users/{}", ctx.base_url, u.id),
                "version": etag(u.version),
            }),
        );
        out
    }

    /// Renders a group as its SCIM resource (RFC 7643 §4.2), with `members` if loaded.
    pub fn render_group(&self, ctx: &ProviderCtx, v: &GroupView) -> Map<String, Value> {
        let g = &v.group;
        let mut out = Map::new();
        out.insert(
            "schemas".into(),
            g.resource
                .get("schemas")
                .cloned()
                .unwrap_or_else(|| json!([GROUP_RESOURCE.schema.id])),
        );
        out.insert("id".into(), Value::String(g.id.to_string()));
        for (k, val) in &g.resource {
            if k != "schemas" && k != "members" {
                out.insert(k.clone(), val.clone());
            }
        }
        if let Some(members) = &v.members {
            if !members.is_empty() {
                let list: Vec<Value> = members.iter().map(|m| self.member_json(ctx, *m)).collect();
                out.insert("members".into(), Value::Array(list));
            }
        }
        out.insert(
            "meta".into(),
            json!({
                "resourceType": "Group",
                "created": g.created_at.to_rfc3339(),
                "lastModified": g.updated_at.to_rfc3339(),
                "location": format!("{}/Groups/{}", ctx.base_url, g.id),
                "version": etag(g.version),
            }),
        );
        out
    }
}
