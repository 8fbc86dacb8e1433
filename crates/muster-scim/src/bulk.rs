//! Bulk requests (RFC 7644 §3.7): parsing, `bulkId` references, and the order in which
//! operations must run so that every reference is resolved before it is used.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::error::ScimError;

/// The BulkRequest message schema.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message schema.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// An HTTP method a bulk operation may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkMethod {
    /// Create.
    Post,
    /// Replace.
    Put,
    /// Modify.
    Patch,
    /// Delete.
    Delete,
}

impl BulkMethod {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkMethod::Post => "POST",
            BulkMethod::Put => "PUT",
            BulkMethod::Patch => "PATCH",
            BulkMethod::Delete => "DELETE",
        }
    }
}

/// One operation of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOp {
    /// The method.
    pub method: BulkMethod,
    /// The resource path, such as `/Users` or `/Groups/bulkId:qwerty`.
    pub path: String,
    /// The client's temporary id for a resource this operation creates.
    pub bulk_id: Option<String>,
    /// The version the client expects (`If-Match`).
    pub version: Option<String>,
    /// The body.
    pub data: Option<Value>,
}

/// A parsed bulk request.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Stop after this many errors.
    pub fail_on_errors: Option<usize>,
    /// The operations, in request order.
    pub ops: Vec<BulkOp>,
}

fn get_ci<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Reads a BulkRequest; more than `max_ops` operations is 413 (RFC 7644 §3.7.4).
pub fn parse(body: &Value, max_ops: usize) -> Result<BulkRequest, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "a bulk request must be a JSON object",
        ));
    };
    if let Some(schemas) = get_ci(obj, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))
            })
        });
        if !ok {
            return Err(ScimError::invalid_value(format!(
                "a bulk request's 'schemas' must be [\"{BULK_REQUEST_SCHEMA}\"]"
            )));
        }
    }
    let fail_on_errors = match get_ci(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n as usize),
            _ => {
                return Err(ScimError::invalid_value(
                    "'failOnErrors' must be an integer of at least 1",
                ))
            }
        },
    };
    let Some(Value::Array(ops)) = get_ci(obj, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "a bulk request needs an 'Operations' array",
        ));
    };
    if ops.len() > max_ops {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "the bulk request has {} operations; the maximum is {max_ops} (maxOperations)",
                ops.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let n = i + 1;
        let Value::Object(op) = op else {
            return Err(ScimError::invalid_syntax(format!(
                "bulk operation {n} is not an object"
            )));
        };
        let method = match get_ci(op, "method")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("POST") => BulkMethod::Post,
            Some("PUT") => BulkMethod::Put,
            Some("PATCH") => BulkMethod::Patch,
            Some("DELETE") => BulkMethod::Delete,
            other => {
                return Err(ScimError::invalid_value(format!(
                    "bulk operation {n}: 'method' must be POST, PUT, PATCH or DELETE, not {}",
                    other.unwrap_or("missing")
                )))
            }
        };
        let path = get_ci(op, "path")
            .and_then(Value::as_str)
            .ok_or_else(|| ScimError::invalid_value(format!("bulk operation {n} needs a 'path'")))?
            .to_string();
        let bulk_id = get_ci(op, "bulkId")
            .and_then(Value::as_str)
            .map(str::to_string);
        if method == BulkMethod::Post && bulk_id.is_none() {
            return Err(ScimError::invalid_value(format!(
                "bulk operation {n}: a POST needs a 'bulkId'"
            )));
        }
        if let Some(id) = &bulk_id {
            if !seen.insert(id.clone()) {
                return Err(ScimError::invalid_value(format!(
                    "bulk operation {n}: the bulkId '{id}' is used twice"
                )));
            }
        }
        let data = get_ci(op, "data").cloned();
        if method != BulkMethod::Delete && data.is_none() {
            return Err(ScimError::invalid_value(format!(
                "bulk operation {n}: {} needs 'data'",
                method.as_str()
            )));
        }
        let version = get_ci(op, "version")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(BulkOp {
            method,
            path,
            bulk_id,
            version,
            data,
        });
    }
    Ok(BulkRequest {
        fail_on_errors,
        ops: out,
    })
}

/// The bulkIds an operation refers to (`bulkId:x` in its path or anywhere in its data).
pub fn references(op: &BulkOp) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                if let Some(id) = s.strip_prefix("bulkId:") {
                    out.push(id.to_string());
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for segment in op.path.split('/') {
        if let Some(id) = segment.strip_prefix("bulkId:") {
            out.push(id.to_string());
        }
    }
    if let Some(d) = &op.data {
        walk(d, &mut out);
    }
    out
}

/// Replaces `bulkId:x` with the id created for `x`, in a path or a value.
pub fn substitute_path(path: &str, ids: &HashMap<String, String>) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                Some(id) => id.clone(),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Replaces `bulkId:x` strings in a JSON value.
pub fn substitute_value(v: &Value, ids: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
            Some(id) => Value::String(id.clone()),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute_value(x, ids)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute_value(x, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What to do with each operation, in the order to do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run operation `i` (its references are all created by earlier steps, or it has none).
    Run(usize),
    /// Operation `i` refers to a bulkId no operation defines.
    Unknown(usize, String),
    /// Operation `i` is part of (or depends on) a circle of references.
    Circular(usize),
}

/// Orders the operations: request order, except that an operation using a bulkId that a later
/// operation defines waits until that operation has run (RFC 7644 §3.7.2 lets references point
/// forward). What never becomes ready is part of, or depends on, a circle.
pub fn plan(ops: &[BulkOp]) -> Vec<Step> {
    let by_id: HashMap<&str, usize> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.bulk_id.as_deref().map(|b| (b, i)))
        .collect();
    let mut steps = Vec::new();
    let mut bad = vec![false; ops.len()];
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut d = Vec::new();
        for r in references(op) {
            match by_id.get(r.as_str()) {
                Some(j) if *j != i => d.push(*j),
                Some(_) => {}
                None => {
                    if !bad[i] {
                        steps.push(Step::Unknown(i, r.clone()));
                        bad[i] = true;
                    }
                }
            }
        }
        deps.push(d);
    }
    let mut done = vec![false; ops.len()];
    let mut waiting: Vec<usize> = Vec::new();
    for i in 0..ops.len() {
        if bad[i] {
            continue;
        }
        if deps[i].iter().all(|j| done[*j]) {
            done[i] = true;
            steps.push(Step::Run(i));
            // Whatever was waiting for this one may run now, in request order.
            loop {
                let ready = waiting
                    .iter()
                    .position(|w| deps[*w].iter().all(|j| done[*j]));
                let Some(pos) = ready else { break };
                let w = waiting.remove(pos);
                done[w] = true;
                steps.push(Step::Run(w));
            }
        } else {
            waiting.push(i);
        }
    }
    for w in waiting {
        steps.push(Step::Circular(w));
    }
    steps
}

/// One operation's entry in a BulkResponse.
pub fn response_entry(
    op: &BulkOp,
    status: u16,
    location: Option<&str>,
    version: Option<&str>,
    error: Option<&ScimError>,
) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("method".into(), json!(op.method.as_str()));
    if let Some(b) = &op.bulk_id {
        m.insert("bulkId".into(), json!(b));
    }
    if let Some(l) = location {
        m.insert("location".into(), json!(l));
    }
    if let Some(v) = version {
        m.insert("version".into(), json!(v));
    }
    m.insert("status".into(), json!(status.to_string()));
    if let Some(e) = error {
        m.insert("response".into(), e.to_json());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ops: Value) -> BulkRequest {
        parse(
            &json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": ops}),
            10,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn references_run_first_whatever_the_order() {
        let r = req(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "G", "members": [{"value": "bulkId:u"}]}},
            {"method": "PATCH", "path": "/Groups/bulkId:g", "data": {"Operations": []}},
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "x"}}
        ]));
        assert_eq!(plan(&r.ops), vec![Step::Run(2), Step::Run(0), Step::Run(1)]);
        // Request order is kept where nothing forces a change: the DELETE stays last.
        let r = req(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"members": [{"value": "bulkId:u"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "x"}},
            {"method": "DELETE", "path": "/Users/bulkId:u"}
        ]));
        assert_eq!(plan(&r.ops), vec![Step::Run(1), Step::Run(0), Step::Run(2)]);
        let mut ids = HashMap::new();
        ids.insert("g".to_string(), "G1".to_string());
        assert_eq!(substitute_path("/Groups/bulkId:g", &ids), "/Groups/G1");
    }

    #[test]
    fn circles_and_unknown_ids_are_reported() {
        let r = req(json!([
            {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {"members": [{"value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {"members": [{"value": "bulkId:a"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"manager": {"value": "bulkId:nobody"}}},
            {"method": "DELETE", "path": "/Users/bulkId:c"},
            {"method": "POST", "path": "/Users", "bulkId": "d", "data": {"userName": "d"}}
        ]));
        let steps = plan(&r.ops);
        assert!(steps.contains(&Step::Circular(0)) && steps.contains(&Step::Circular(1)));
        assert!(steps.contains(&Step::Unknown(2, "nobody".into())));
        assert!(
            steps.contains(&Step::Circular(3)),
            "depends on a failed operation: {steps:?}"
        );
        assert!(steps.contains(&Step::Run(4)));
    }

    #[test]
    fn limits_and_shape() {
        let many: Vec<Value> = (0..11)
            .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
            .collect();
        let e = parse(&json!({"Operations": many}), 10).err();
        assert_eq!(e.map(|e| e.status), Some(413));
        assert!(
            parse(
                &json!({"Operations": [{"method": "POST", "path": "/Users", "data": {}}]}),
                10
            )
            .is_err(),
            "POST needs a bulkId"
        );
        assert!(parse(
            &json!({"Operations": [{"method": "GET", "path": "/Users"}]}),
            10
        )
        .is_err());
        assert!(parse(&json!({"Operations": [{"method": "POST", "path": "/Users", "bulkId": "a", "data": {}}, {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}}]}), 10).is_err());
        assert!(parse(&json!({"failOnErrors": 0, "Operations": []}), 10).is_err());
    }
}
