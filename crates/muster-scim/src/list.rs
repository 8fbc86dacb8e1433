//! List and search parameters and the ListResponse message (RFC 7644 §3.4.2, §3.4.3).

use serde_json::{json, Value};

use crate::error::ScimError;
use crate::schema::LIST_RESPONSE_SCHEMA;

/// The parameters of a list or search request, as the client sent them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// `filter` (RFC 7644 §3.4.2.2).
    pub filter: Option<String>,
    /// `sortBy` (RFC 7644 §3.4.2.3).
    pub sort_by: Option<String>,
    /// `sortOrder`: true for descending.
    pub descending: bool,
    /// `startIndex`, 1-based (RFC 7644 §3.4.2.4); values below 1 read as 1.
    pub start_index: u64,
    /// `count`; `None` means the server's page size.
    pub count: Option<u64>,
    /// `attributes` (RFC 7644 §3.4.2.5).
    pub attributes: Option<String>,
    /// `excludedAttributes` (RFC 7644 §3.4.2.5).
    pub excluded_attributes: Option<String>,
}

impl ListParams {
    /// Reads query-string pairs; parameter names are matched case-insensitively.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ScimError> {
        let mut p = ListParams {
            start_index: 1,
            ..Default::default()
        };
        for (key, value) in pairs {
            match key.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(value.to_string()),
                "sortby" => p.sort_by = Some(value.to_string()).filter(|s| !s.is_empty()),
                "sortorder" => p.descending = parse_sort_order(value)?,
                "startindex" => p.start_index = parse_int("startIndex", value)?.max(1) as u64,
                "count" => p.count = Some(parse_int("count", value)?.max(0) as u64),
                "attributes" => p.attributes = Some(value.to_string()),
                "excludedattributes" => p.excluded_attributes = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(p)
    }

    /// Reads a `POST /.search` body (RFC 7644 §3.4.3).
    pub fn from_search_body(body: &Value) -> Result<Self, ScimError> {
        let Value::Object(map) = body else {
            return Err(ScimError::invalid_syntax(
                "the search request must be a JSON object",
            ));
        };
        let mut p = ListParams {
            start_index: 1,
            ..Default::default()
        };
        for (key, value) in map {
            let text = |v: &Value| -> Result<String, ScimError> {
                match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Array(items) => Ok(items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")),
                    _ => Err(ScimError::invalid_value(format!(
                        "'{key}' must be a string"
                    ))),
                }
            };
            let int = |v: &Value| -> Result<i64, ScimError> {
                match v {
                    Value::Number(n) => n.as_i64().ok_or_else(|| {
                        ScimError::invalid_value(format!("'{key}' must be an integer"))
                    }),
                    Value::String(s) => parse_int(key, s),
                    _ => Err(ScimError::invalid_value(format!(
                        "'{key}' must be an integer"
                    ))),
                }
            };
            match key.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(text(value)?),
                "sortby" => p.sort_by = Some(text(value)?).filter(|s| !s.is_empty()),
                "sortorder" => p.descending = parse_sort_order(&text(value)?)?,
                "startindex" => p.start_index = int(value)?.max(1) as u64,
                "count" => p.count = Some(int(value)?.max(0) as u64),
                "attributes" => p.attributes = Some(text(value)?),
                "excludedattributes" => p.excluded_attributes = Some(text(value)?),
                _ => {}
            }
        }
        Ok(p)
    }

    /// The page size to use: the client's `count`, capped at `max`, or `max`.
    pub fn page_size(&self, max: u64) -> u64 {
        self.count.map(|c| c.min(max)).unwrap_or(max)
    }
}

fn parse_int(name: &str, value: &str) -> Result<i64, ScimError> {
    value.trim().parse::<i64>().map_err(|_| {
        ScimError::invalid_value(format!("'{name}' must be an integer, not '{value}'"))
    })
}

fn parse_sort_order(value: &str) -> Result<bool, ScimError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "ascending" => Ok(false),
        "descending" => Ok(true),
        _ => Err(ScimError::invalid_value(format!(
            "'sortOrder' must be 'ascending' or 'descending', not '{value}'"
        ))),
    }
}

/// A ListResponse message (RFC 7644 §3.4.2).
pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    // Built by hand rather than with `json!`, which would copy every resource.
    let mut out = serde_json::Map::with_capacity(5);
    out.insert("schemas".into(), json!([LIST_RESPONSE_SCHEMA]));
    out.insert("totalResults".into(), total.into());
    out.insert("startIndex".into(), start_index.into());
    out.insert("itemsPerPage".into(), resources.len().into());
    out.insert("Resources".into(), Value::Array(resources));
    Value::Object(out)
}

/// Writes to `out` the JSON of the ListResponse [`list_response`] builds, byte for byte, with
/// each item written by `write` in its place: for resources written straight from their stored
/// text (`crate::render::write_stored`), never held as values.
pub fn write_list_response<T>(
    out: &mut Vec<u8>,
    total: u64,
    start_index: u64,
    items: Vec<T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.extend_from_slice(b"{\"schemas\":");
    // Writing JSON into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, &[LIST_RESPONSE_SCHEMA]);
    let head = format!(
        ",\"totalResults\":{total},\"startIndex\":{start_index},\"itemsPerPage\":{},\"Resources\":[",
        items.len()
    );
    out.extend_from_slice(head.as_bytes());
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_list_is_the_built_one() {
        for items in [
            vec![],
            vec![json!({"a": 1})],
            vec![json!({"a": 1}), json!({"b": "x\""})],
        ] {
            let want = serde_json::to_vec(&list_response(12, 3, items.clone())).unwrap_or_default();
            let mut got = Vec::new();
            write_list_response(&mut got, 12, 3, items, |out, v| {
                let _ = serde_json::to_writer(out, &v);
            });
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn query_parameters() {
        let p = ListParams::from_pairs([
            ("filter", "userName eq \"x\""),
            ("StartIndex", "0"),
            ("COUNT", "-5"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.start_index, 1);
        assert_eq!(p.count, Some(0));
        assert_eq!(p.filter.as_deref(), Some("userName eq \"x\""));
        assert_eq!(p.page_size(100), 0);
        let p = ListParams::from_pairs([("count", "5000")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.page_size(100), 100);
        assert!(ListParams::from_pairs([("count", "ten")]).is_err());
        assert!(ListParams::from_pairs([("sortOrder", "sideways")]).is_err());
    }

    #[test]
    fn search_body() {
        let p = ListParams::from_search_body(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "attributes": ["displayName", "userName"],
            "filter": "displayName sw \"smith\"",
            "startIndex": 1, "count": 10
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.attributes.as_deref(), Some("displayName,userName"));
        assert_eq!(p.count, Some(10));
    }

    #[test]
    fn response_shape() {
        let r = list_response(0, 1, vec![]);
        assert_eq!(r["totalResults"], 0);
        assert_eq!(r["Resources"], json!([]));
    }
}
