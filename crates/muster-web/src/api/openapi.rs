//! The OpenAPI 3.1 document of the administration API.

use serde_json::{json, Value};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"},
        "409": {"$ref": "#/components/responses/Error"}
    })
}

fn op(
    summary: &str,
    tag: &str,
    params: Value,
    body: Option<&str>,
    ok_status: &str,
    ok_schema: Option<&str>,
) -> Value {
    let mut responses = error_responses();
    let ok = match ok_schema {
        Some(s) => {
            json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}})
        }
        None => json!({"description": "Success"}),
    };
    responses[ok_status] = ok;
    let mut o =
        json!({"summary": summary, "tags": [tag], "parameters": params, "responses": responses});
    if let Some(b) = body {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
    }
    o
}

fn path_id(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
}

/// The mapping endpoints and their schemas.
fn mapping_paths() -> (Value, Value) {
    let id = || json!([path_id("id")]);
    let string = json!({"type": "string"});
    let ids = json!({"type": "array", "items": {"type": "string", "format": "uuid"}});
    let summary = json!({"type": ["object", "null"], "properties": {"id": string, "name": string}});
    let group = json!({"type": "object", "properties": {"id": string, "displayName": string, "members": {"type": "integer"}}});
    let status = json!({"type": "object", "properties": {
        "state": {"enum": ["no_groups", "all_mapped", "unmapped_groups"]}, "message": string,
        "unmappedGroups": {"type": "array", "items": group}}});
    let paths = json!({
        "/api/v1/providers/{id}/mapping": {"get": op("A provider's organization mapping and role mapping, with status messages", "mapping", id(), None, "200", Some("Mapping"))},
        "/api/v1/providers/{id}/mapping/org": {"put": op("Choose the organization mapping method (moves nobody by itself)", "mapping", id(), Some("OrgMappingInput"), "200", Some("Mapping"))},
        "/api/v1/providers/{id}/mapping/groups": {"post": op("Map SCIM groups to an organization, at the lowest priority", "mapping", id(), Some("GroupMappingInput"), "201", Some("Mapping"))},
        "/api/v1/providers/{id}/mapping/groups/{mappingId}": {
            "put": op("Change an entry's groups and organization", "mapping", json!([path_id("id"), path_id("mappingId")]), Some("GroupMappingInput"), "200", Some("Mapping")),
            "delete": op("Delete an entry", "mapping", json!([path_id("id"), path_id("mappingId")]), None, "200", Some("Mapping"))
        },
        "/api/v1/providers/{id}/mapping/group-order": {"put": op("Set the entries' priority order (every entry id, highest first)", "mapping", id(), Some("GroupOrder"), "200", Some("Mapping"))},
        "/api/v1/providers/{id}/mapping/roles/{groupId}": {
            "put": op("Set a group's role mapping; roles it no longer gives are taken from members at once", "mapping", json!([path_id("id"), path_id("groupId")]), Some("RoleMappingInput"), "200", Some("Mapping")),
            "delete": op("Remove a group's role mapping; members lose its roles at once", "mapping", json!([path_id("id"), path_id("groupId")]), None, "200", Some("Mapping"))
        },
        "/api/v1/providers/{id}/mapping/preview": {"get": op("Every user the current mappings would move or give other roles", "mapping", json!([path_id("id"),
            {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 100000}}]), None, "200", Some("Preview"))},
        "/api/v1/providers/{id}/mapping/apply": {"post": op("Re-apply the mappings: perform the preview (409 if digest no longer matches)", "mapping", id(), Some("ApplyInput"), "200", Some("Applied"))}
    });
    let schemas = json!({
        "Mapping": {"type": "object", "properties": {
            "orgMapping": {"type": ["object", "null"], "properties": {
                "method": {"enum": ["single", "c42_org_name", "attribute", "groups"]}, "org": summary,
                "attribute": {"type": ["string", "null"]}, "parentOrg": summary, "unmappedOrg": summary, "updatedAt": string}},
            "groupMappings": {"type": "array", "items": {"type": "object", "properties": {
                "id": string, "priority": {"type": "integer"}, "org": summary, "groups": {"type": "array", "items": group}}}},
            "groupMappingStatus": status, "roleMappingStatus": status,
            "roleMappings": {"type": "array", "items": {"type": "object", "properties": {"group": group, "roles": {"type": "array", "items": summary}}}},
            "groupsWithoutRoleMapping": {"type": "array", "items": group}}},
        "OrgMappingInput": {"type": "object", "required": ["method"], "additionalProperties": false, "properties": {
            "method": {"enum": ["single", "c42_org_name", "attribute", "groups"]}, "orgId": string,
            "attribute": {"type": "string", "description": "A SCIM attribute path, e.g. title or addresses[type eq \"work\"].locality"},
            "parentOrgId": string, "unmappedOrgId": string}},
        "GroupMappingInput": {"type": "object", "required": ["groupIds", "orgId"], "additionalProperties": false, "properties": {"groupIds": ids, "orgId": string}},
        "GroupOrder": {"type": "object", "required": ["order"], "additionalProperties": false, "properties": {"order": ids}},
        "RoleMappingInput": {"type": "object", "required": ["roleIds"], "additionalProperties": false, "properties": {"roleIds": ids}},
        "Preview": {"type": "object", "properties": {
            "users": {"type": "integer"}, "changed": {"type": "integer"}, "orgChanges": {"type": "integer"}, "roleChanges": {"type": "integer"},
            "orgsToCreate": {"type": "array", "items": string}, "digest": string,
            "changes": {"type": "array", "items": {"type": "object", "properties": {
                "userId": string, "userName": string, "orgFrom": summary,
                "orgTo": {"type": ["object", "null"], "properties": {"id": {"type": ["string", "null"]}, "name": string, "new": {"type": "boolean"}}},
                "rolesFrom": {"type": "array", "items": string}, "rolesTo": {"type": ["array", "null"], "items": string}}}}}},
        "ApplyInput": {"type": "object", "additionalProperties": false, "properties": {"digest": string}},
        "Applied": {"type": "object", "properties": {"applied": {"type": "object", "properties": {
            "users": {"type": "integer"}, "moved": {"type": "integer"}, "rolesChanged": {"type": "integer"}, "orgsCreated": {"type": "integer"}}}}}
    });
    (paths, schemas)
}

/// The document, with `server_url` as its server.
pub fn document(server_url: &str) -> Value {
    let mut doc = base_document(server_url);
    let (paths, schemas) = mapping_paths();
    for (section, extra) in [("paths", paths), ("schemas", schemas)] {
        let target = if section == "paths" {
            doc.get_mut("paths")
        } else {
            doc.get_mut("components").and_then(|c| c.get_mut("schemas"))
        };
        if let (Some(Value::Object(t)), Value::Object(e)) = (target, extra) {
            t.extend(e);
        }
    }
    doc
}

fn base_document(server_url: &str) -> Value {
    let id = || json!([path_id("id")]);
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": ["string", "null"]});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Muster administration API",
            "version": "1",
            "description": "Organizations, roles, users and provisioning providers. Authenticate with an administrator API token (`muster admin token create`) as `Authorization: Bearer msa_...`."
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {"summary": "This document", "tags": ["meta"], "security": [], "responses": {"200": {"description": "The OpenAPI document"}}}},
            "/api/v1/orgs": {
                "get": op("List organizations", "orgs", json!([query("status", "active or deactivated")]), None, "200", Some("OrgList")),
                "post": op("Add an organization (under the default organization unless parentId)", "orgs", json!([]), Some("CreateOrg"), "201", Some("Org"))
            },
            "/api/v1/orgs/tree": {"get": op("The organization tree", "orgs", json!([]), None, "200", Some("OrgTree"))},
            "/api/v1/orgs/{id}": {
                "get": op("One organization", "orgs", id(), None, "200", Some("Org")),
                "patch": op("Rename, move, deactivate (with its descendants) or reactivate", "orgs", id(), Some("UpdateOrg"), "200", Some("Org"))
            },
            "/api/v1/orgs/{id}/default-roles": {"put": op("Set the default roles, or inherit them (roleIds: null)", "orgs", id(), Some("DefaultRoles"), "200", Some("Org"))},
            "/api/v1/roles": {
                "get": op("The role catalog", "roles", json!([]), None, "200", Some("RoleList")),
                "post": op("Add a role", "roles", json!([]), Some("CreateRole"), "201", Some("Role"))
            },
            "/api/v1/roles/{id}": {"delete": op("Delete a role nothing uses", "roles", id(), None, "204", None)},
            "/api/v1/users": {
                "get": op("List users", "users", json!([
                    query("org", "organization id"), query("status", "active, blocked or deactivated"),
                    query("provider", "provider id, or 'local'"), query("q", "text in userName or display name"),
                    query("cursor", "nextCursor of the previous page"),
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
                ]), None, "200", Some("UserList")),
                "post": op("Add a local user", "users", json!([]), Some("CreateUser"), "201", Some("User"))
            },
            "/api/v1/users/{id}": {
                "get": op("One user, with organization, effective roles and their sources", "users", id(), None, "200", Some("User")),
                "patch": op("Block, unblock, deactivate, reactivate, move, set roles, legal hold", "users", id(), Some("UpdateUser"), "200", Some("User"))
            },
            "/api/v1/providers": {
                "get": op("List provisioning providers", "providers", json!([]), None, "200", Some("ProviderList")),
                "post": op("Add a provider; the response has its first token's secret, shown once", "providers", json!([]), Some("CreateProvider"), "201", Some("Provider"))
            },
            "/api/v1/providers/{id}": {
                "get": op("One provider", "providers", id(), None, "200", Some("Provider")),
                "patch": op("Rename, or set the deactivation delay", "providers", id(), Some("UpdateProvider"), "200", Some("Provider"))
            },
            "/api/v1/providers/{id}/tokens": {
                "get": op("A provider's tokens (prefixes only)", "providers", id(), None, "200", Some("TokenList")),
                "post": op("Add a token; its secret is shown once", "providers", id(), Some("CreateToken"), "201", Some("Token"))
            },
            "/api/v1/sync-log": {
                "get": op("Sync log entries, newest first", "sync-log", json!([
                    query("since", "RFC 3339 time, inclusive"), query("until", "RFC 3339 time, exclusive"),
                    query("provider", "provider id"), query("user", "user id"), query("group", "group id"),
                    query("action", "an action such as user.created, or a family such as user."),
                    query("result", "success or error"), query("cursor", "nextCursor of the previous page"),
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
                ]), None, "200", Some("LogPage"))
            },
            "/api/v1/sync-log/export.csv": {
                "get": {
                    "summary": "Sync log entries as CSV (same filters), streamed", "tags": ["sync-log"],
                    "parameters": [query("since", "RFC 3339 time, inclusive"), query("until", "RFC 3339 time, exclusive"),
                        query("provider", "provider id"), query("user", "user id"), query("group", "group id"),
                        query("action", "action or family"), query("result", "success or error")],
                    "responses": {"200": {"description": "CSV: id, time, provider_id, provider, actor_kind, actor, action, subject_kind, subject_id, subject_name, result, message, details", "content": {"text/csv": {"schema": {"type": "string"}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}}
                }
            },
            "/api/v1/providers/{id}/tokens/{tokenId}": {
                "delete": op("Revoke a token", "providers", json!([path_id("id"), path_id("tokenId")]), None, "204", None)
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": string, "message": string}}}},
                "Role": {"type": "object", "properties": {"id": string, "name": string, "description": string, "builtin": {"type": "boolean"}}},
                "RoleList": {"type": "object", "properties": {"roles": {"type": "array", "items": {"$ref": "#/components/schemas/Role"}}}},
                "CreateRole": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {"name": string, "description": string}},
                "Org": {"type": "object", "properties": {
                    "id": string, "name": string, "parentId": nullable_string, "path": {"type": "array", "items": string},
                    "status": {"enum": ["active", "deactivated"]},
                    "defaultRoles": {"type": "array", "items": {"$ref": "#/components/schemas/Role"}},
                    "defaultRolesInherited": {"type": "boolean"}, "defaultRolesFrom": nullable_string,
                    "createdAt": string, "updatedAt": string}},
                "OrgList": {"type": "object", "properties": {"orgs": {"type": "array", "items": {"$ref": "#/components/schemas/Org"}}}},
                "OrgTree": {"type": "object", "properties": {"id": string, "name": string, "status": string, "children": {"type": "array", "items": {"$ref": "#/components/schemas/OrgTree"}}}},
                "CreateOrg": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {"name": {"type": "string", "minLength": 3, "maxLength": 220}, "parentId": string}},
                "UpdateOrg": {"type": "object", "additionalProperties": false, "properties": {"name": string, "parentId": string, "status": {"enum": ["active", "deactivated"]}}},
                "DefaultRoles": {"type": "object", "required": ["roleIds"], "additionalProperties": false, "properties": {"roleIds": {"type": ["array", "null"], "items": string}}},
                "User": {"type": "object", "properties": {
                    "id": string, "userName": string, "displayName": nullable_string,
                    "status": {"enum": ["active", "blocked", "deactivated"]}, "orgId": string,
                    "org": {"type": "object", "properties": {"id": string, "name": string}},
                    "roles": {"type": "array", "items": {"type": "object", "properties": {"id": string, "name": string, "source": {"enum": ["admin", "mapping", "org"]}}}},
                    "owner": {"type": "object", "properties": {"kind": {"enum": ["local", "provider"]}, "providerId": string, "providerName": string}},
                    "legalHold": {"type": "boolean"}, "changedOutsideProvisioning": {"type": "boolean"},
                    "pendingDeactivationAt": nullable_string, "removedByProvider": {"type": "boolean"},
                    "createdAt": string, "updatedAt": string, "scim": {"type": "object"}}},
                "UserList": {"type": "object", "properties": {"users": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}, "nextCursor": nullable_string}},
                "CreateUser": {"type": "object", "required": ["userName"], "additionalProperties": false, "properties": {"userName": string, "displayName": string, "email": string, "orgId": string}},
                "UpdateUser": {"type": "object", "additionalProperties": false, "properties": {
                    "status": {"enum": ["active", "blocked", "deactivated"]}, "orgId": string,
                    "roleIds": {"type": "array", "items": string}, "legalHold": {"type": "boolean"}}},
                "Provider": {"type": "object", "properties": {
                    "id": string, "name": string, "scimBaseUrl": string, "deactivationDelaySeconds": {"type": "integer"},
                    "createdAt": string, "lastSyncAt": nullable_string, "errorsLast24h": {"type": "integer"},
                    "token": {"type": "object", "description": "Only in the response that creates the provider", "properties": {"id": string, "prefix": string, "secret": string}}}},
                "ProviderList": {"type": "object", "properties": {"providers": {"type": "array", "items": {"$ref": "#/components/schemas/Provider"}}}},
                "CreateProvider": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {"name": string}},
                "UpdateProvider": {"type": "object", "additionalProperties": false, "properties": {"name": string, "deactivationDelaySeconds": {"type": "integer", "minimum": 0, "maximum": 7776000}}},
                "Token": {"type": "object", "properties": {
                    "id": string, "label": string, "prefix": string, "createdAt": string, "expiresAt": nullable_string,
                    "revokedAt": nullable_string, "lastUsedAt": nullable_string, "live": {"type": "boolean"},
                    "secret": {"type": "string", "description": "Only in the response that creates the token"}}},
                "TokenList": {"type": "object", "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}},
                "LogEntry": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "at": string, "providerId": nullable_string, "provider": nullable_string,
                    "actor": {"type": "object", "properties": {"kind": {"enum": ["provider", "admin", "system"]}, "name": nullable_string, "providerId": string}},
                    "action": string,
                    "subject": {"type": "object", "properties": {"kind": nullable_string, "id": nullable_string, "name": nullable_string}},
                    "result": {"enum": ["success", "error"]}, "message": nullable_string, "details": {}}},
                "LogPage": {"type": "object", "properties": {"entries": {"type": "array", "items": {"$ref": "#/components/schemas/LogEntry"}}, "nextCursor": nullable_string}},
                "CreateToken": {"type": "object", "additionalProperties": false, "properties": {"label": string, "expiresAt": {"type": "string", "format": "date-time"}}}
            }
        }
    })
}
