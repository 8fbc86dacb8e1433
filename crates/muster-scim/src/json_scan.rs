//! Where the top-level members of a JSON object are, checked as strictly as `serde_json` parses
//! the object into a map, without building anything.
//!
//! Every user and group read from the database is scanned so ([`crate::stored`]): a GET sends
//! each member's text as stored, and a page of users scans each user's text. The scan was
//! `serde_json`'s deserializer with a visitor of raw values: about 5,000 instructions for a
//! user under callgrind, 3,700 with this one (a page of 50 users, the whole request: 1,448,000
//! → 1,384,000; docs/benchmarks.md). It is also stricter where it has to be: the raw-value
//! reader accepted a number no `f64` holds (`1e400`) or a lone surrogate escape, which the map
//! then failed to parse on first use. This one accepts exactly what
//! `serde_json::from_str::<Map<String, Value>>` accepts, so that the map built from the same text
//! on first use cannot fail: the tests compare the two on tens of thousands of texts, valid and
//! broken.

use std::ops::Range;

/// serde_json's limit on nesting: 127 arrays and objects, the top-level object included (its
/// `remaining_depth` starts at 128 and must stay above 0 inside a container).
const MAX_DEPTH: usize = 127;

/// Why a text is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset where the text stopped making sense.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// One top-level member: its name's range (inside the quotes), whether the name has escapes
/// (then the range is not the name's text), and its value's range.
pub type Member = (Range<usize>, bool, Range<usize>);

/// The top-level members of the JSON object `text` is, in order.
pub fn object_members(text: &str) -> Result<Vec<Member>, ScanError> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(s.err("expected a JSON object"));
    }
    let mut out = Vec::with_capacity(16);
    s.object(0, |name, escaped, value| out.push((name, escaped, value)))?;
    s.ws();
    if s.i != s.b.len() {
        return Err(s.err("trailing characters"));
    }
    Ok(out)
}

/// The bytes a string holds as they are: all but `"`, `\\` and the control characters.
static PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = false;
        c += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn err(&self, what: &'static str) -> ScanError {
        ScanError { at: self.i, what }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ScanError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// An object at nesting `depth` (the top-level object at 0), from its `{`: each member's
    /// name (inside its quotes, and whether it has escapes) and value go to `member`.
    fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(Range<usize>, bool, Range<usize>),
    ) -> Result<(), ScanError> {
        if depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1;
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            self.ws();
            self.expect(b'"', "expected a member name")?;
            let start = self.i;
            let escaped = self.string_body()?;
            let name = start..self.i - 1;
            self.ws();
            self.expect(b':', "expected ':'")?;
            self.ws();
            let value = self.i;
            self.value(depth + 1)?;
            member(name, escaped, value..self.i);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            return self.expect(b'}', "expected ',' or '}'");
        }
    }

    /// A value at nesting `depth` (the top-level object's members are at 1).
    fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.string_body().map(|_| ())
            }
            Some(b'{') => self.object(depth, |_, _, _| ()),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nested too deeply"));
                }
                self.i += 1;
                self.ws();
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat(b',') {
                        continue;
                    }
                    return self.expect(b']', "expected ',' or ']'");
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("expected a value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number, which must also be one a map can hold: serde_json refuses one whose value
    /// is beyond `f64` (such as `1e400`).
    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.i;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        let mut plain = true;
        if self.eat(b'.') {
            plain = false;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            plain = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        // A plain integer of up to 300 digits fits an f64; a longer one, or one with a fraction
        // or an exponent, is checked the way serde_json reads it.
        if !plain || self.i - start > 300 {
            let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("x");
            if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(ScanError {
                    at: start,
                    what: "number out of range",
                });
            }
        }
        Ok(())
    }

    /// The rest of a string after its opening quote; whether it had escapes.
    fn string_body(&mut self) -> Result<bool, ScanError> {
        let mut escaped = false;
        loop {
            // Plain characters (not `"`, `\\` or a control character), by a table.
            self.i += self.b[self.i..]
                .iter()
                .take_while(|&&c| PLAIN[usize::from(c)])
                .count();
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            let unit = self.hex4()?;
                            match unit {
                                0xD800..=0xDBFF => {
                                    // A leading surrogate must be followed by a trailing one.
                                    if !(self.eat(b'\\') && self.eat(b'u')) {
                                        return Err(self.err("lone leading surrogate"));
                                    }
                                    if !(0xDC00..=0xDFFF).contains(&self.hex4()?) {
                                        return Err(self.err("lone leading surrogate"));
                                    }
                                }
                                0xDC00..=0xDFFF => return Err(self.err("lone trailing surrogate")),
                                _ => {}
                            }
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(0x00..=0x1F) => return Err(self.err("control character in string")),
                Some(_) => self.i += 1,
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            n = n * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// What serde_json says of the text: `None` unless it parses into a map; then the members
    /// as its reader of raw values finds them, names unescaped.
    fn theirs(text: &str) -> Option<Vec<(String, String)>> {
        use serde::Deserializer;
        serde_json::from_str::<Map<String, Value>>(text).ok()?;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    let raw: &serde_json::value::RawValue = m.next_value()?;
                    out.push((k, raw.get().to_string()));
                }
                Ok(out)
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let v = (&mut de).deserialize_map(V).ok()?;
        de.end().ok()?;
        Some(v)
    }

    fn ours(text: &str) -> Option<Vec<(String, String)>> {
        let members = object_members(text).ok()?;
        Some(
            members
                .into_iter()
                .map(|(name, escaped, value)| {
                    let name = if escaped {
                        serde_json::from_str::<String>(&text[name.start - 1..name.end + 1])
                            .unwrap_or_default()
                    } else {
                        text[name].to_string()
                    };
                    (name, text[value].to_string())
                })
                .collect(),
        )
    }

    fn same(text: &str) {
        assert_eq!(ours(text), theirs(text), "{text:?}");
    }

    #[test]
    fn agrees_with_serde_json_on_chosen_texts() {
        for text in [
            "{}",
            " { } ",
            r#"{"a":1}"#,
            r#"{"a":-0,"b":0.5,"c":1e10,"d":1E-3,"e":-12.5e+2}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-1e400}"#,
            r#"{"a":1e-400}"#,
            r#"{"a":123456789012345678901234567890}"#,
            r#"{"a":tru}"#,
            r#"{"a":true,"b":false,"c":null}"#,
            r#"{"a":"\u00e9\n\t\"\\\/\b\f\r"}"#,
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\ud83d"}"#,
            r#"{"a":"\ud83dx"}"#,
            r#"{"a":"\ude00"}"#,
            r#"{"a":"\ud83d\u0041"}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\u{7f}\"}",
            r#"{"a\"b":1,"c":[1,{"d":[]}],"e":{}}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1}x"#,
            r#"{"a":1} "#,
            r#"[1]"#,
            r#""x""#,
            "",
            "{",
            r#"{"a":"#,
            r#"{"a":1,"a":2}"#,
            "{\"a\":1\u{a0}}",
        ] {
            same(text);
        }
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        for n in [100, 126, 127, 128, 200] {
            same(&deep(n));
        }
        // Each kind of special character at each place of a long string, which is skipped
        // eight bytes at a time.
        for special in [
            "\"", "\\", "\\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "\\u00e9",
        ] {
            for at in 0..24 {
                let mut body = "abcdefghijklmnopqrstuvwx".to_string();
                body.insert_str(at, special);
                same(&format!("{{\"a\":\"{body}\",\"b\":1}}"));
            }
        }
        let long = format!("{{\"a\":{}}}", "9".repeat(400));
        same(&long);
        let long = format!("{{\"a\":{}}}", "9".repeat(310));
        same(&long);
    }

    /// A xorshift generator: the same texts on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn value(r: &mut Rng, depth: usize) -> Value {
        match r.below(if depth > 3 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(r.below(2) == 0),
            2 => serde_json::json!(r.next() as i64 >> r.below(60)),
            3 => serde_json::json!((r.next() as f64) / 1e9 - 9e9),
            4 => {
                let pool = [
                    "a", "é", "\"", "\\", "\n", "😀", "\u{1}", "x y", "/", "\u{7f}",
                ];
                Value::String((0..r.below(5)).map(|_| pool[r.below(pool.len())]).collect())
            }
            5 | 6 => Value::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
            _ => Value::Object(
                (0..r.below(4))
                    .map(|i| {
                        (
                            format!("k{i}{}", ["", "\"", "é"][r.below(3)]),
                            value(r, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn agrees_with_serde_json_on_generated_and_broken_texts() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let pieces = [
            "", "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "0", "-", ".", "e", "E", "+",
            "1e999", "\\u", "\\ud800", "\\udc00", "t", "null", "\u{1}", "é", "\n", "01",
        ];
        let mut compared = 0;
        for _ in 0..20_000 {
            let mut map = Map::new();
            for i in 0..r.below(6) {
                map.insert(format!("m{i}"), value(&mut r, 0));
            }
            let text = if r.below(2) == 0 {
                serde_json::to_string(&map).unwrap_or_default()
            } else {
                serde_json::to_string_pretty(&map).unwrap_or_default()
            };
            same(&text);
            // Broken copies: a piece put in, or a stretch taken out, at a character boundary.
            for _ in 0..3 {
                let mut broken = text.clone();
                let mut at = r.below(broken.len() + 1);
                while !broken.is_char_boundary(at) {
                    at -= 1;
                }
                if r.below(2) == 0 {
                    broken.insert_str(at, pieces[r.below(pieces.len())]);
                } else {
                    let mut end = (at + 1 + r.below(3)).min(broken.len());
                    while !broken.is_char_boundary(end) {
                        end += 1;
                    }
                    broken.replace_range(at..end, "");
                }
                same(&broken);
                compared += 1;
            }
        }
        assert!(compared >= 60_000);
    }
}
