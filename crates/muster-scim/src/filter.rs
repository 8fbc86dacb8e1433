//! SCIM filter expressions and attribute paths (RFC 7644 §3.4.2.2, §3.5.2, §3.10).
//!
//! This is the first of three stages a filter goes through: syntax only. The parser knows the
//! grammar of Figure 1 in RFC 7644 §3.4.2.2 and nothing about schemas: whether `title` exists or is
//! case-exact is decided later, against the schema.
//!
//! It accepts what real clients send beyond the strict grammar, all of it unambiguous:
//! keywords and operators in any case (`Eq`, `AND`), bare words as string values
//! (`name.familyName eq x`), and a sub-attribute after a value filter
//! (`emails[type eq "work"].value eq "x"`), which is read as
//! `emails[type eq "work" and value eq "x"]`.
//!
//! Input size and nesting depth are capped so that no request can exhaust the stack.

use std::fmt;

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// The deepest nesting of parentheses, `not` and value filters accepted.
pub const MAX_FILTER_DEPTH: usize = 64;

/// An attribute path: `[URI ":"] ATTRNAME ["." subAttr]` (RFC 7644 §3.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URI prefix, when the path is fully qualified.
    pub urn: Option<String>,
    /// The attribute name, as written.
    pub name: String,
    /// The sub-attribute name, as written.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute with no schema prefix.
    pub fn simple(name: &str) -> Self {
        Self {
            urn: None,
            name: name.to_string(),
            sub: None,
        }
    }

    /// Parses a bare attribute path such as `name.givenName` or
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let text = text.trim();
        split_attr_path(text).ok_or_else(|| FilterError {
            position: 0,
            message: format!("'{text}' is not a valid attribute path"),
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator (RFC 7644 §3.4.2.2, Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// less than
    Lt,
    /// greater than or equal to
    Ge,
    /// less than or equal to
    Le,
}

impl CompareOp {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "lt" => CompareOp::Lt,
            "ge" => CompareOp::Ge,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    /// The operator as written in a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        }
    }
}

/// A comparison value: `false / null / true / number / string` (RFC 7644 §3.4.2.2).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string (or a bare word, read as a string).
    String(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => {
                // A JSON string literal; serializing a str cannot fail.
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
        }
    }
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath pr`
    Present(AttrPath),
    /// `attrPath op value`
    Compare(AttrPath, CompareOp, CompValue),
    /// `left and right`
    And(Box<Filter>, Box<Filter>),
    /// `left or right`
    Or(Box<Filter>, Box<Filter>),
    /// `not (inner)`
    Not(Box<Filter>),
    /// `attrPath [ inner ]`: the inner filter's paths are sub-attributes of `attrPath`.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// Parses a filter, with the default size and depth limits.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError {
                position: MAX_FILTER_LEN,
                message: format!("the filter is longer than {MAX_FILTER_LEN} bytes"),
            });
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
            len: text.len(),
        };
        let filter = parser.parse_or()?;
        if let Some(tok) = parser.peek() {
            return Err(parser.error_at(tok.start, format!("unexpected '{}'", tok.text())));
        }
        Ok(filter)
    }

    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    /// Every attribute path the filter names, with value-filter paths qualified by their parent.
    pub fn visit_paths<'a>(&'a self, f: &mut dyn FnMut(Option<&'a AttrPath>, &'a AttrPath)) {
        fn walk<'a>(
            filter: &'a Filter,
            parent: Option<&'a AttrPath>,
            f: &mut dyn FnMut(Option<&'a AttrPath>, &'a AttrPath),
        ) {
            match filter {
                Filter::Present(p) | Filter::Compare(p, _, _) => f(parent, p),
                Filter::And(a, b) | Filter::Or(a, b) => {
                    walk(a, parent, f);
                    walk(b, parent, f);
                }
                Filter::Not(inner) => walk(inner, parent, f),
                Filter::ValuePath(p, inner) => {
                    f(parent, p);
                    walk(inner, Some(p), f);
                }
            }
        }
        walk(self, None, f)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn side(f: &mut fmt::Formatter<'_>, child: &Filter, min: u8) -> fmt::Result {
            if child.precedence() < min {
                write!(f, "({child})")
            } else {
                write!(f, "{child}")
            }
        }
        match self {
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Filter::And(a, b) => {
                side(f, a, 2)?;
                f.write_str(" and ")?;
                side(f, b, 3)
            }
            Filter::Or(a, b) => {
                side(f, a, 1)?;
                f.write_str(" or ")?;
                side(f, b, 2)
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
        }
    }
}

/// A PATCH path: `attrPath / valuePath [subAttr]` (RFC 7644 §3.5.2).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with its sub-attribute when no value filter is given).
    pub attr: AttrPath,
    /// The value filter between brackets, if any.
    pub filter: Option<Filter>,
    /// The sub-attribute after the value filter, if any (`emails[type eq "work"].value`).
    pub sub_after_filter: Option<String>,
}

impl PatchPath {
    /// Parses a PATCH `path`.
    pub fn parse(text: &str) -> Result<PatchPath, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(FilterError {
                position: MAX_FILTER_LEN,
                message: format!("the path is longer than {MAX_FILTER_LEN} bytes"),
            });
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
            len: text.len(),
        };
        let attr = parser.expect_attr_path()?;
        let mut filter = None;
        let mut sub_after_filter = None;
        if parser.eat(&Tok::LBracket) {
            if attr.sub.is_some() {
                return Err(parser
                    .error_here("a value filter must follow an attribute, not a sub-attribute"));
            }
            parser.enter()?;
            filter = Some(parser.parse_or()?);
            parser.leave();
            parser.expect(&Tok::RBracket, "']'")?;
            if let Some(Token {
                tok: Tok::SubAttr(name),
                ..
            }) = parser.peek().cloned()
            {
                parser.pos += 1;
                sub_after_filter = Some(name);
            }
        }
        if let Some(tok) = parser.peek() {
            return Err(parser.error_at(tok.start, format!("unexpected '{}' in path", tok.text())));
        }
        Ok(PatchPath {
            attr,
            filter,
            sub_after_filter,
        })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_after_filter {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A syntax error in a filter or path, with the byte position where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct FilterError {
    /// Byte offset into the input.
    pub position: usize,
    /// What was wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A bare word: attribute path, keyword, operator, number, `true`, `false`, `null`.
    Word(String),
    /// `.name` directly after `]`.
    SubAttr(String),
    /// A JSON string literal, unescaped.
    Str(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
}

impl Token {
    fn text(&self) -> String {
        match &self.tok {
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::LBracket => "[".into(),
            Tok::RBracket => "]".into(),
            Tok::Word(w) => w.clone(),
            Tok::SubAttr(w) => format!(".{w}"),
            Tok::Str(s) => format!("\"{s}\""),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' | b')' | b'[' | b']' => {
                let tok = match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBracket,
                    _ => Tok::RBracket,
                };
                tokens.push(Token { tok, start: i });
                i += 1;
            }
            b'"' => {
                let start = i;
                let end = scan_string(bytes, i).ok_or_else(|| FilterError {
                    position: start,
                    message: "unterminated string".into(),
                })?;
                let literal = &text[start..end];
                let value: String = serde_json::from_str(literal).map_err(|_| FilterError {
                    position: start,
                    message: format!("invalid string literal {literal}"),
                })?;
                tokens.push(Token {
                    tok: Tok::Str(value),
                    start,
                });
                i = end;
            }
            b'.' if matches!(
                tokens.last(),
                Some(Token {
                    tok: Tok::RBracket,
                    ..
                })
            ) =>
            {
                let start = i;
                i += 1;
                let word_start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                let name = &text[word_start..i];
                if !is_attr_name(name) {
                    return Err(FilterError {
                        position: start,
                        message: "expected a sub-attribute name after ']'.".into(),
                    });
                }
                tokens.push(Token {
                    tok: Tok::SubAttr(name.to_string()),
                    start,
                });
            }
            _ if is_word_byte(c) => {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token {
                    tok: Tok::Word(text[start..i].to_string()),
                    start,
                });
            }
            _ => {
                // Step over a whole UTF-8 character so the message shows it intact.
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(FilterError {
                    position: i,
                    message: format!("unexpected character '{ch}'"),
                });
            }
        }
    }
    Ok(tokens)
}

/// Bytes that may appear in a bare word: attribute paths with URNs (`:`, `.`, digits), numbers
/// (`-`, `+`, `.`), and any non-ASCII text in a bare value.
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, b'_' | b'-' | b':' | b'.' | b'+' | b'$' | b'@' | b'/')
        || c >= 0x80
}

/// Finds the end (exclusive) of the JSON string starting at `start`.
fn scan_string(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `ATTRNAME = ALPHA *(nameChar)`, with `$` allowed first for `$ref` (RFC 7643 §2.1).
fn is_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Splits `[URI ":"] ATTRNAME ["." subAttr]`.
fn split_attr_path(word: &str) -> Option<AttrPath> {
    let (urn, rest) = if word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        let colon = word.rfind(':')?;
        (Some(word[..colon].to_string()), &word[colon + 1..])
    } else {
        (None, word)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(name) || !sub.is_none_or(is_attr_name) {
        return None;
    }
    Some(AttrPath {
        urn,
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek().map(|t| &t.tok) == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), FilterError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.error_here(&format!("expected {what}")))
        }
    }

    fn here(&self) -> usize {
        self.peek().map(|t| t.start).unwrap_or(self.len)
    }

    fn error_at(&self, position: usize, message: String) -> FilterError {
        FilterError { position, message }
    }

    fn error_here(&self, message: &str) -> FilterError {
        let found = match self.peek() {
            Some(tok) => format!("'{}'", tok.text()),
            None => "the end of the filter".to_string(),
        };
        FilterError {
            position: self.here(),
            message: format!("{message}, found {found}"),
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error_at(
                self.here(),
                format!("the filter nests deeper than {MAX_FILTER_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, FilterError> {
        if self.peek_word("not")
            && matches!(
                self.tokens.get(self.pos + 1),
                Some(Token {
                    tok: Tok::LParen,
                    ..
                })
            )
        {
            self.pos += 1;
            self.enter()?;
            let inner = self.parse_unary()?;
            self.leave();
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat(&Tok::LParen) {
            self.enter()?;
            let inner = self.parse_or()?;
            self.leave();
            self.expect(&Tok::RParen, "')'")?;
            return Ok(inner);
        }
        let path = self.expect_attr_path()?;
        if self.eat(&Tok::LBracket) {
            if path.sub.is_some() {
                return Err(
                    self.error_here("a value filter must follow an attribute, not a sub-attribute")
                );
            }
            self.enter()?;
            let inner = self.parse_or()?;
            self.leave();
            self.expect(&Tok::RBracket, "']'")?;
            if let Some(Token {
                tok: Tok::SubAttr(sub),
                ..
            }) = self.peek().cloned()
            {
                // `emails[type eq "work"].value eq "x"`: the comparison joins the value filter.
                self.pos += 1;
                let sub_path = AttrPath {
                    urn: None,
                    name: sub,
                    sub: None,
                };
                let cmp = self.parse_comparison(sub_path)?;
                return Ok(Filter::ValuePath(
                    path,
                    Box::new(Filter::And(Box::new(inner), Box::new(cmp))),
                ));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.parse_comparison(path)
    }

    fn parse_comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let op_start = self.here();
        let op_word = match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => w.clone(),
            _ => return Err(self.error_here(&format!("expected an operator after '{path}'"))),
        };
        self.pos += 1;
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::from_word(&op_word).ok_or_else(|| {
            self.error_at(
                op_start,
                format!("the operator '{op_word}' is not supported"),
            )
        })?;
        let value = self.parse_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn parse_value(&mut self) -> Result<CompValue, FilterError> {
        let token = match self.peek() {
            Some(t) => t.clone(),
            None => return Err(self.error_here("expected a value")),
        };
        let value = match token.tok {
            Tok::Str(s) => CompValue::String(s),
            Tok::Word(w) => {
                if w.eq_ignore_ascii_case("true") {
                    CompValue::Bool(true)
                } else if w.eq_ignore_ascii_case("false") {
                    CompValue::Bool(false)
                } else if w.eq_ignore_ascii_case("null") {
                    CompValue::Null
                } else if let Some(n) = parse_number(&w) {
                    CompValue::Number(n)
                } else {
                    // A bare word: read as a string, as several clients send them.
                    CompValue::String(w)
                }
            }
            _ => return Err(self.error_here("expected a value")),
        };
        self.pos += 1;
        Ok(value)
    }

    fn expect_attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let token = match self.peek() {
            Some(t) => t.clone(),
            None => return Err(self.error_here("expected an attribute name")),
        };
        match &token.tok {
            Tok::Word(w) => {
                let path = split_attr_path(w).ok_or_else(|| {
                    self.error_at(token.start, format!("'{w}' is not a valid attribute path"))
                })?;
                self.pos += 1;
                Ok(path)
            }
            _ => Err(self.error_here("expected an attribute name")),
        }
    }
}

fn parse_number(word: &str) -> Option<serde_json::Number> {
    let first = word.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'-') {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(word) {
        Ok(serde_json::Value::Number(n)) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Filter {
        match Filter::parse(text) {
            Ok(f) => f,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    /// Every example filter of RFC 7644 §3.4.2.2, Figure 2.
    const RFC_EXAMPLES: &[&str] = &[
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];

    #[test]
    fn parses_every_rfc_example_and_round_trips() {
        for text in RFC_EXAMPLES {
            let f = p(text);
            let printed = f.to_string();
            assert_eq!(p(&printed), f, "{text} printed as {printed}");
        }
    }

    #[test]
    fn urn_paths_split_at_the_last_colon() {
        let f = p(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26""#,
        );
        let Filter::Compare(path, CompareOp::Eq, CompValue::String(v)) = f else {
            panic!("{f:?}")
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(path.name, "manager");
        assert_eq!(path.sub.as_deref(), Some("value"));
        assert_eq!(v, "26");
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = p(r#"a eq "1" or b eq "2" and c eq "3""#);
        let Filter::Or(left, right) = f else {
            panic!("{f:?}")
        };
        assert!(matches!(*left, Filter::Compare(..)));
        assert!(matches!(*right, Filter::And(..)));
        let f = p(r#"a eq "1" and b eq "2" or c eq "3" and d eq "4" or e pr"#);
        assert_eq!(
            f.to_string(),
            r#"a eq "1" and b eq "2" or c eq "3" and d eq "4" or e pr"#
        );
    }

    #[test]
    fn keywords_and_operators_are_case_insensitive() {
        assert_eq!(p(r#"username Eq "x""#), p(r#"username eq "x""#));
        assert_eq!(
            p(r#"a EQ "1" AND b eq "2" Or NOT (c pr)"#),
            p(r#"a eq "1" and b eq "2" or not (c pr)"#)
        );
    }

    #[test]
    fn quoted_values_may_hold_keywords_parentheses_and_quotes() {
        let f = p(r#"displayName eq "and" or displayName eq "x) or (y \"q\"""#);
        let Filter::Or(a, b) = f else { panic!() };
        assert_eq!(
            *a,
            Filter::Compare(
                AttrPath::simple("displayName"),
                CompareOp::Eq,
                CompValue::String("and".into())
            )
        );
        assert_eq!(
            *b,
            Filter::Compare(
                AttrPath::simple("displayName"),
                CompareOp::Eq,
                CompValue::String("x) or (y \"q\"".into())
            )
        );
    }

    #[test]
    fn bare_words_numbers_booleans_and_null() {
        assert_eq!(
            p("name.FamilyName eq x"),
            Filter::Compare(
                AttrPath {
                    urn: None,
                    name: "name".into(),
                    sub: Some("FamilyName".into())
                },
                CompareOp::Eq,
                CompValue::String("x".into())
            )
        );
        assert!(matches!(
            p("active eq True"),
            Filter::Compare(_, _, CompValue::Bool(true))
        ));
        assert!(matches!(
            p("x eq null"),
            Filter::Compare(_, _, CompValue::Null)
        ));
        assert!(matches!(
            p("x gt -1.5e3"),
            Filter::Compare(_, CompareOp::Gt, CompValue::Number(_))
        ));
    }

    #[test]
    fn sub_attribute_after_value_filter_joins_it() {
        let f = p(r#"emails[type eq "work"].value eq "a@b.c""#);
        assert_eq!(f, p(r#"emails[type eq "work" and value eq "a@b.c"]"#));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            (r#"userName regex "x""#, "regex"),
            (r#"userName eq"#, "expected a value"),
            (r#"(userName eq "x""#, "expected ')'"),
            (r#"userName eq "x" and"#, "attribute name"),
            (r#"userName eq "x"#, "unterminated"),
            (r#"1abc eq "x""#, "not a valid attribute path"),
            (r#"userName eq "x" extra"#, "unexpected"),
            ("", "attribute name"),
            (r#"name.givenName[x eq "y"]"#, "sub-attribute"),
            ("a eq 'x'", "unexpected character"),
        ];
        for (text, needle) in cases {
            let err = Filter::parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text} parsed"));
            assert!(err.message.contains(needle), "{text}: {err}");
        }
    }

    /// Found by the `filter` fuzz target: large numbers must print and parse back exactly.
    #[test]
    fn numbers_round_trip_exactly() {
        for text in [
            "meaf.milyName co 66666666666666666666e66",
            "x gt 1e308",
            "x lt -0.000000000000000000001",
            "x eq 18446744073709551616",
        ] {
            let f = p(text);
            assert_eq!(p(&f.to_string()), f, "{text}");
        }
    }

    #[test]
    fn depth_and_length_are_capped() {
        let deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_FILTER_DEPTH + 1),
            ")".repeat(MAX_FILTER_DEPTH + 1)
        );
        assert!(Filter::parse(&deep).is_err());
        let ok = format!(
            "{}a pr{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(Filter::parse(&ok).is_ok());
        let long = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        assert!(Filter::parse(&long).is_err());
        let many_nots = "not (".repeat(10_000);
        assert!(Filter::parse(&many_nots).is_err());
    }

    #[test]
    fn patch_paths() {
        let p1 =
            PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p1.attr, AttrPath::simple("emails"));
        assert_eq!(p1.sub_after_filter.as_deref(), Some("value"));
        assert_eq!(p1.to_string(), r#"emails[type eq "work"].value"#);
        let p2 = PatchPath::parse(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p2.filter.is_some());
        let p3 = PatchPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p3.attr.name, "employeeNumber");
        assert!(PatchPath::parse("name.givenName.x").is_err());
        assert!(PatchPath::parse("emails[type eq \"work\"").is_err());
        assert!(PatchPath::parse("").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = Filter> {
            let name = prop::sample::select(vec![
                "userName",
                "title",
                "name.givenName",
                "emails.value",
                "active",
            ]);
            let op = prop::sample::select(vec![
                CompareOp::Eq,
                CompareOp::Ne,
                CompareOp::Co,
                CompareOp::Sw,
                CompareOp::Ew,
                CompareOp::Gt,
                CompareOp::Lt,
                CompareOp::Ge,
                CompareOp::Le,
            ]);
            let value = prop_oneof![
                Just(CompValue::Null),
                any::<bool>().prop_map(CompValue::Bool),
                any::<i32>().prop_map(|n| CompValue::Number(n.into())),
                "[ -~]{0,12}".prop_map(CompValue::String),
            ];
            prop_oneof![
                name.clone().prop_map(|n| Filter::Present(
                    AttrPath::parse(n).unwrap_or_else(|_| AttrPath::simple("x"))
                )),
                (name, op, value).prop_map(|(n, o, v)| {
                    Filter::Compare(
                        AttrPath::parse(n).unwrap_or_else(|_| AttrPath::simple("x")),
                        o,
                        v,
                    )
                }),
            ]
        }

        fn filter() -> impl Strategy<Value = Filter> {
            leaf().prop_recursive(5, 32, 2, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner.clone())
                        .prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                    inner.clone().prop_map(|a| Filter::Not(Box::new(a))),
                    inner.prop_map(|a| Filter::ValuePath(AttrPath::simple("emails"), Box::new(a))),
                ]
            })
        }

        proptest! {
            #[test]
            fn printed_filters_parse_back_to_the_same_tree(f in filter()) {
                let printed = f.to_string();
                let again = Filter::parse(&printed);
                prop_assert_eq!(again, Ok(f), "{}", printed);
            }

            #[test]
            fn arbitrary_input_never_panics(s in "\\PC{0,64}") {
                let _ = Filter::parse(&s);
                let _ = PatchPath::parse(&s);
            }
        }
    }
}
