//! A resource's attributes as they come out of the database: JSON text, parsed only when
//! something reads them.
//!
//! Most reads of a resource only send it back (`GET /Users/{id}`, a filter, a page). Parsing
//! the stored text into a `serde_json` map and writing the map out again was about a quarter of
//! a `GET /Users/{id}` in callgrind's count (docs/benchmarks.md, "The stored JSON sent as
//! stored"). So [`Attributes`] keeps the text. [`crate::render::write_stored`] copies its
//! attributes straight into the response, and the map is built on first use by anything else
//! (filters evaluated in memory, PATCH, mapping rules, the console).
//!
//! The text is checked when it is read from the database ([`Attributes::from_text`]): it must be
//! a JSON object that parses into a map ([`crate::json_scan`] checks exactly that, and finds
//! where the members are). So a corrupt row is reported where it is read, as before, and the
//! parse on first use cannot fail.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// A resource's stored attributes (canonical form, without `id` and `meta`): a JSON object.
/// Reads as a map (`Deref`). To change it, take the map ([`Attributes::into_map`]) and make
/// new attributes of the result (`From<Map>`): the text it was read from no longer applies.
#[derive(Clone)]
pub struct Attributes(Repr);

#[derive(Clone)]
enum Repr {
    /// Read from storage: the text, where its members are, and its map once something asked.
    Text(Box<str>, Members, OnceLock<Map<String, Value>>),
    /// Given as a map, or changed since it was read.
    Map(Map<String, Value>),
}

/// Where each top-level member's name (inside its quotes) and value are in the text, in order;
/// `None` when a name has escapes (so is not the text between its quotes), which canonical
/// attribute names never have.
type Members = Option<Box<[(Range<usize>, Range<usize>)]>>;

impl Default for Attributes {
    fn default() -> Attributes {
        Attributes(Repr::Map(Map::new()))
    }
}

/// A map of text checked to be a JSON object when read ([`Attributes::from_text`]): it cannot
/// fail.
fn parse(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

impl Attributes {
    /// Attributes read from stored text, which must be a JSON object (checked as strictly as
    /// parsing it into a map, by [`crate::json_scan`]).
    pub fn from_text(text: String) -> Result<Attributes, serde_json::Error> {
        let members = crate::json_scan::object_members(&text)
            .map_err(<serde_json::Error as serde::de::Error>::custom)?
            .into_iter()
            .map(|(name, escaped, value)| (!escaped).then_some((name, value)))
            .collect();
        Ok(Attributes(Repr::Text(
            text.into_boxed_str(),
            members,
            OnceLock::new(),
        )))
    }

    /// The text they were read from, while it is still what they say.
    pub fn stored_text(&self) -> Option<&str> {
        match &self.0 {
            Repr::Text(text, _, _) => Some(text),
            Repr::Map(_) => None,
        }
    }

    /// The members of the text they were read from, in order: each name and its value's JSON
    /// text. `None` when they changed since, or when a name in the text has escapes.
    pub fn stored_members(&self) -> Option<impl Iterator<Item = (&str, &str)>> {
        match &self.0 {
            Repr::Text(text, Some(members), _) => Some(
                members
                    .iter()
                    .map(|(name, value)| (&text[name.clone()], &text[value.clone()])),
            ),
            _ => None,
        }
    }

    /// The attributes as JSON text, for storing: the text they were read from if unchanged.
    pub fn to_json(&self) -> String {
        match &self.0 {
            Repr::Text(text, _, _) => text.to_string(),
            Repr::Map(map) => serde_json::to_string(map).unwrap_or_else(|_| "{}".into()),
        }
    }

    /// The attributes as a map, parsed now if they were not yet.
    pub fn into_map(self) -> Map<String, Value> {
        match self.0 {
            Repr::Text(text, _, parsed) => parsed.into_inner().unwrap_or_else(|| parse(&text)),
            Repr::Map(map) => map,
        }
    }
}

impl From<Map<String, Value>> for Attributes {
    fn from(map: Map<String, Value>) -> Attributes {
        Attributes(Repr::Map(map))
    }
}

impl Deref for Attributes {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        match &self.0 {
            Repr::Text(text, _, parsed) => parsed.get_or_init(|| parse(text)),
            Repr::Map(map) => map,
        }
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Attributes) -> bool {
        match (self.stored_text(), other.stored_text()) {
            (Some(a), Some(b)) if a == b => true,
            _ => **self == **other,
        }
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_reads_as_its_map_and_is_kept_until_changed() {
        let text = r#"{"userName":"b\u00e9a","name":{"givenName":"B"},"active":true,"n":1.5}"#;
        let a = Attributes::from_text(text.into()).unwrap_or_default();
        assert_eq!(a.stored_text(), Some(text));
        let members: Vec<(&str, &str)> = a.stored_members().into_iter().flatten().collect();
        assert_eq!(
            members,
            [
                ("userName", r#""b\u00e9a""#),
                ("name", r#"{"givenName":"B"}"#),
                ("active", "true"),
                ("n", "1.5")
            ]
        );
        assert_eq!(a["userName"], "béa");
        assert_eq!(a.get("name"), Some(&json!({"givenName": "B"})));
        assert_eq!(a.stored_text(), Some(text), "reading keeps the text");
        let mut m = a.into_map();
        m.insert("displayName".into(), json!("Bea"));
        let a = Attributes::from(m);
        assert_eq!(a.stored_text(), None, "a change drops it");
        assert_eq!(a["displayName"], "Bea");
        let stored: Value = serde_json::from_str(&a.to_json()).unwrap_or_default();
        assert_eq!(stored["displayName"], "Bea");
        assert_eq!(stored["userName"], "béa");
    }

    #[test]
    fn only_an_object_is_accepted() {
        for bad in ["[1]", "\"x\"", "{\"a\":", "{\"a\":1} x", "", "{\"a\":tru}"] {
            assert!(Attributes::from_text(bad.into()).is_err(), "{bad:?}");
        }
        assert!(Attributes::from_text("{}".into()).is_ok());
    }

    #[test]
    fn members_are_in_order_and_an_escaped_name_stops_the_copy() {
        let text = r#"{"b":[1, 2],"c":"s"}"#;
        let a = Attributes::from_text(text.into()).unwrap_or_default();
        let members: Vec<(&str, &str)> = a.stored_members().into_iter().flatten().collect();
        assert_eq!(members, [("b", "[1, 2]"), ("c", r#""s""#)]);
        let text = r#"{"b":[1, 2],"a\"q":{"x":null},"c":"s"}"#;
        let a = Attributes::from_text(text.into()).unwrap_or_default();
        assert!(
            a.stored_members().is_none(),
            "an escaped name is not copied"
        );
        assert_eq!(a.get("a\"q"), Some(&json!({"x": null})));
    }

    #[test]
    fn equal_when_the_maps_are() {
        let a = Attributes::from_text(r#"{"a":1}"#.into()).unwrap_or_default();
        let b = Attributes::from(json!({"a": 1}).as_object().cloned().unwrap_or_default());
        assert_eq!(a, b);
        assert_eq!(a.clone().into_map(), b.into_map());
    }
}
