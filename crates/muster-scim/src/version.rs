//! Resource versions as entity tags (RFC 7644 §3.14): Muster's versions are integers, sent as
//! weak ETags (`W/"3"`); `If-Match` and `If-None-Match` name the versions a client holds.

/// The weak ETag of a version.
pub fn etag(version: i64) -> String {
    // Put together by hand rather than with `format!`: every response carries one, and the
    // formatting machinery was 500 of a GET's instructions (callgrind, docs/benchmarks.md).
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(version);
    let mut tag = String::with_capacity(digits.len() + 3);
    tag.push_str("W/\"");
    tag.push_str(digits);
    tag.push('"');
    tag
}

/// What an `If-Match` or `If-None-Match` header accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// `*`: any current version.
    Any,
    /// These versions. A tag that names no version Muster issued is left out, so a header of
    /// only such tags matches nothing.
    Versions(Vec<i64>),
}

impl Tags {
    /// Reads a header's comma-separated entity tags, weak (`W/"3"`) or strong (`"3"`).
    pub fn parse(header: &str) -> Self {
        let mut versions = Vec::new();
        for tag in header.split(',').map(str::trim) {
            if tag == "*" {
                return Tags::Any;
            }
            let opaque = tag.strip_prefix("W/").unwrap_or(tag);
            if let Some(v) = opaque
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(|t| t.parse::<i64>().ok())
            {
                versions.push(v);
            }
        }
        Tags::Versions(versions)
    }

    /// Whether the tags name this version.
    pub fn admits(&self, version: i64) -> bool {
        match self {
            Tags::Any => true,
            Tags::Versions(v) => v.contains(&version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_strong_star_and_junk() {
        assert_eq!(etag(7), "W/\"7\"");
        assert_eq!(etag(i64::MAX), format!("W/\"{}\"", i64::MAX));
        assert!(Tags::parse("W/\"7\"").admits(7));
        assert!(Tags::parse("\"7\"").admits(7));
        assert!(Tags::parse("W/\"1\", W/\"7\"").admits(7));
        assert!(!Tags::parse("W/\"1\"").admits(7));
        assert!(Tags::parse("*").admits(7));
        assert!(!Tags::parse("W/\"abc\"").admits(7));
        assert!(!Tags::parse("7").admits(7));
    }
}
