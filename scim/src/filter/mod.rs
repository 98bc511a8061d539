//! SCIM filters (RFC 7644 §3.4.2.2), attribute paths and PATCH paths (§3.5.2): a hand-written
//! recursive-descent parser (here) and an evaluator over SCIM resource JSON documents
//! ([`eval`]).

mod eval;

pub use eval::{Attributes, get_ci, lookup, matches};

use serde_json::Value;

/// An attribute reference: optional schema URN, attribute name, optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

/// A comparison operator of a filter (`eq`, `ne`, `co`, `sw`, `ew`, `gt`, `ge`, `lt`, `le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed SCIM filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    /// The value is a String, Number, Bool or Null.
    Compare(AttrPath, CompareOp, Value),
    /// `emails[type eq "work" and value co "@x.io"]` — the inner filter's paths are relative to
    /// each element (their `attr` is the sub-attribute name, urn None, sub None).
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH path: `members`, `name.familyName`, `emails[type eq "work"].value`,
/// `members[value eq "2819c223"]`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`, or a bare
/// extension URN `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` (then `attr.attr`
/// is the empty string).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute; its `sub` is always None (see `sub` below).
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

/// A filter or path that does not parse; the message says where (character position, from 0)
/// and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
}

/// Parses a filter (the `filter=` query parameter).
pub fn parse_filter(input: &str) -> Result<Filter, ParseError> {
    parse_all(input, "'and', 'or' or end of filter", |p| p.parse_or(false))
}

/// Parses an attribute path as used by `attributes=`, `excludedAttributes=` and `sortBy=`.
/// A bare schema URN (see [`PatchPath`]) gives an empty `attr`.
pub fn parse_attr_path(input: &str) -> Result<AttrPath, ParseError> {
    parse_all(input, "end of attribute path", |p| p.parse_path(true))
}

/// Parses the `path` of a PATCH operation.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, ParseError> {
    parse_all(input, "end of PATCH path", |p| {
        let path = p.parse_path(true)?;
        let mut sub = path.sub.clone();
        let attr = AttrPath { sub: None, ..path };
        let mut filter = None;
        if !attr.attr.is_empty() && sub.is_none() && p.peek() == Some('[') {
            filter = Some(p.group(']', true)?);
            if p.bump_if('.') {
                sub = Some(p.parse_name()?);
            }
        }
        Ok(PatchPath { attr, filter, sub })
    })
}

/// Longest filter or path accepted (characters).
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses and brackets accepted: the parser and the evaluation recurse,
/// and a client must not be able to exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// Refuses inputs too long or too deeply nested, before any recursion.
fn bounded(input: &str) -> Result<(), ParseError> {
    if input.chars().count() > MAX_LEN {
        return Err(ParseError {
            message: format!("longer than {MAX_LEN} characters"),
        });
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in input.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ParseError {
                        message: format!("nested deeper than {MAX_DEPTH} levels"),
                    });
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_all<T>(
    input: &str,
    what: &str,
    parse: impl FnOnce(&mut Parser<'_>) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    bounded(input)?;
    let mut p = Parser { src: input, pos: 0 };
    p.skip_ws();
    let out = parse(&mut p)?;
    p.skip_ws();
    p.at_end().then_some(out).ok_or_else(|| p.expected(what))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A URN segment that looks like a schema version ("2.0", "1"): the next segment is then the
/// schema's name, not an attribute.
fn is_version(seg: &str) -> bool {
    seg.chars().all(|c| c.is_ascii_digit() || c == '.') && seg.chars().any(|c| c.is_ascii_digit())
}

fn compare_op(word: &str) -> Option<CompareOp> {
    use CompareOp::*;
    let names = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"];
    let i = names.iter().position(|n| n.eq_ignore_ascii_case(word))?;
    [Eq, Ne, Co, Sw, Ew, Gt, Ge, Lt, Le].get(i).copied()
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset, always on a char boundary.
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        self.pos = self.src.len() - self.rest().trim_start().len();
    }

    /// Character (not byte) position of byte offset `at`.
    fn col(&self, at: usize) -> usize {
        self.src.get(..at).map_or(0, |s| s.chars().count())
    }

    fn error(&self, at: usize, what: impl std::fmt::Display) -> ParseError {
        ParseError {
            message: format!("at character {}: {what}", self.col(at)),
        }
    }

    /// "expected `what`, found <what is at the current position>".
    fn expected(&self, what: &str) -> ParseError {
        let found = match self.rest().split_whitespace().next() {
            Some(tok) => format!("'{}'", tok.chars().take(20).collect::<String>()),
            None => "end of input".to_string(),
        };
        self.error(self.pos, format!("expected {what}, found {found}"))
    }

    /// The run of name characters at the current position (keywords, operators, literals).
    fn peek_word(&self) -> &'a str {
        self.rest()
            .split(|c: char| !is_name_char(c))
            .next()
            .unwrap_or("")
    }

    fn keyword(&self, kw: &str) -> bool {
        self.peek_word().eq_ignore_ascii_case(kw)
    }

    /// `(` filter `)` or `[` filter `]`, the opening character being at the current position.
    fn group(&mut self, close: char, nested: bool) -> Result<Filter, ParseError> {
        let open = self.pos;
        self.bump();
        let f = self.parse_or(nested)?;
        self.skip_ws();
        if self.bump_if(close) {
            return Ok(f);
        }
        let what = format!("'{close}' to match the one at character {}", self.col(open));
        Err(self.expected(&what))
    }

    fn bump_if(&mut self, c: char) -> bool {
        self.peek() == Some(c) && self.bump().is_some()
    }

    fn parse_or(&mut self, nested: bool) -> Result<Filter, ParseError> {
        self.parse_binary(nested, true)
    }

    /// `or` (lowest precedence) or `and` chains, left-associative.
    fn parse_binary(&mut self, nested: bool, or: bool) -> Result<Filter, ParseError> {
        let operand = |p: &mut Self| {
            if or {
                p.parse_binary(nested, false)
            } else {
                p.parse_unary(nested)
            }
        };
        let kw = if or { "or" } else { "and" };
        let mut left = operand(self)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if !self.keyword(kw) {
                self.pos = save;
                return Ok(left);
            }
            self.pos += kw.len();
            let (l, r) = (Box::new(left), Box::new(operand(self)?));
            left = if or {
                Filter::Or(l, r)
            } else {
                Filter::And(l, r)
            };
        }
    }

    fn parse_unary(&mut self, nested: bool) -> Result<Filter, ParseError> {
        self.skip_ws();
        if self.peek() == Some('(') {
            return self.group(')', nested);
        }
        if self.keyword("not") {
            self.pos += 3;
            self.skip_ws();
            if self.peek() != Some('(') {
                return Err(self.expected("'(' after 'not'"));
            }
            return Ok(Filter::Not(Box::new(self.group(')', nested)?)));
        }
        if self.at_end() {
            return Err(self.expected("a filter expression"));
        }
        let path = self.parse_path(false)?;
        if self.peek() == Some('[') {
            if nested || path.sub.is_some() {
                let msg = "value filters apply to a top-level attribute and cannot be nested";
                return Err(self.error(self.pos, msg));
            }
            let inner = self.group(']', true)?;
            if self.peek() == Some('.') {
                let msg = "a sub-attribute after a value filter is only allowed in PATCH paths";
                return Err(self.error(self.pos, msg));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.skip_ws();
        let word = self.peek_word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += 2;
            return Ok(Filter::Present(path));
        }
        let Some(op) = compare_op(word) else {
            return Err(self.expected("an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)"));
        };
        self.pos += word.len();
        self.skip_ws();
        Ok(Filter::Compare(path, op, self.parse_value()?))
    }

    fn parse_value(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('"') => {
                self.bump();
                loop {
                    match self.bump() {
                        None => return Err(self.error(start, "unterminated string")),
                        Some('\\') => {
                            self.bump();
                        }
                        Some('"') => break,
                        Some(_) => {}
                    }
                }
                let lit = self.src.get(start..self.pos).unwrap_or("");
                serde_json::from_str(lit)
                    .map_err(|e| self.error(start, format!("invalid string: {e}")))
            }
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let num = |c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E');
                while self.peek().is_some_and(num) {
                    self.bump();
                }
                let lit = self.src.get(start..self.pos).unwrap_or("");
                match serde_json::from_str(lit) {
                    Ok(v @ Value::Number(_)) => Ok(v),
                    _ => Err(self.error(start, format!("invalid number '{lit}'"))),
                }
            }
            _ => {
                let word = self.peek_word();
                let v = match word.to_ascii_lowercase().as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => return Err(self.expected("a value (string, number, true, false or null)")),
                };
                self.pos += word.len();
                Ok(v)
            }
        }
    }

    /// ATTRNAME: ALPHA (or `$`, for `$ref`) followed by ALPHA / DIGIT / "-" / "_".
    fn parse_name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let first = |c: char| c.is_ascii_alphabetic() || c == '$';
        if !self.peek().is_some_and(first) {
            return Err(self.expected("an attribute name"));
        }
        self.bump();
        while self.peek().is_some_and(is_name_char) {
            self.bump();
        }
        Ok(self.src.get(start..self.pos).unwrap_or("").to_string())
    }

    /// `attr` or `attr.sub`.
    fn parse_names(&mut self, urn: Option<String>) -> Result<AttrPath, ParseError> {
        let attr = self.parse_name()?;
        let sub = self.bump_if('.').then(|| self.parse_name()).transpose()?;
        Ok(AttrPath { urn, attr, sub })
    }

    /// `attr`, `attr.sub`, `urn:...:attr`, `urn:...:attr.sub` and, when `allow_bare`, a bare
    /// schema URN whose next-to-last segment is a version (`...:2.0:User`). URN segments may
    /// contain dots, so the attribute starts after the last ':'.
    fn parse_path(&mut self, allow_bare: bool) -> Result<AttrPath, ParseError> {
        let (start, rest) = (self.pos, self.rest());
        if !rest.to_ascii_lowercase().starts_with("urn:") {
            return self.parse_names(None);
        }
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '(' | ')' | '"'))
            .unwrap_or(rest.len());
        let (tok, after) = rest.split_at(len);
        let (urn, last) = tok.rsplit_once(':').unwrap_or((tok, ""));
        let version = is_version(urn.rsplit(':').next().unwrap_or(""));
        if allow_bare && version && !last.contains('.') && !after.starts_with('[') {
            self.pos = start + len;
            return Ok(AttrPath {
                urn: Some(tok.to_string()),
                attr: String::new(),
                sub: None,
            });
        }
        if urn.len() <= 3 {
            let msg = format!("expected a schema URN and an attribute, found '{tok}'");
            return Err(self.error(start, msg));
        }
        self.pos = start + urn.len() + 1;
        let path = self.parse_names(Some(urn.to_string()))?;
        if self.pos != start + len {
            return Err(self.expected("end of attribute path"));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_deep_or_long_filters_are_refused_before_recursing() {
        let deep = format!("{}userName eq \"a\"{}", "(".repeat(40), ")".repeat(40));
        assert!(
            parse_filter(&deep)
                .unwrap_err()
                .message
                .contains("nested deeper")
        );
        let ok = format!("{}userName eq \"a\"{}", "(".repeat(10), ")".repeat(10));
        assert!(parse_filter(&ok).is_ok());
        // Brackets inside a string do not count.
        assert!(parse_filter(&format!("userName eq \"{}\"", "(".repeat(100))).is_ok());
        let long = format!("userName eq \"{}\"", "a".repeat(5000));
        assert!(
            parse_filter(&long)
                .unwrap_err()
                .message
                .contains("longer than")
        );
    }
    use serde_json::json;

    const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    /// `id` and `emails.type` are case-exact (or everything, with `exact`);
    /// `meta.lastModified` is a dateTime.
    struct Attrs {
        exact: bool,
    }

    impl Attributes for Attrs {
        fn case_exact(&self, p: &AttrPath) -> bool {
            let sub = p.sub.as_deref().unwrap_or("");
            self.exact
                || p.attr.eq_ignore_ascii_case("id")
                || (p.attr.eq_ignore_ascii_case("emails") && sub.eq_ignore_ascii_case("type"))
        }
        fn is_date_time(&self, p: &AttrPath) -> bool {
            let sub = p.sub.as_deref().unwrap_or("");
            p.attr.eq_ignore_ascii_case("meta") && sub.eq_ignore_ascii_case("lastModified")
        }
    }

    fn ap(urn: Option<&str>, attr: &str, sub: Option<&str>) -> AttrPath {
        let s = |x: &str| x.to_string();
        AttrPath {
            urn: urn.map(s),
            attr: s(attr),
            sub: sub.map(s),
        }
    }

    fn check(f: &str, exact: bool) -> bool {
        let user = json!({
            "schemas": [CORE, ENT], "id": "2819c223-7f76", "userName": "Bjensen",
            "displayName": "Babs \"B\" Jensén", "nickName": null, "active": true, "loginCount": 42,
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {"lastModified": "2011-05-13T04:42:34Z", "resourceType": "User"},
            ENT: {"employeeNumber": "701984", "manager": {"value": "26118915"}}
        });
        let filter = parse_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        matches(&filter, &user, CORE, &Attrs { exact })
    }

    fn m(f: &str) -> bool {
        check(f, false)
    }

    #[test]
    fn operators_on_user() {
        let yes = r#"userName eq "bjensen"; userName ne "other"; title ne "x"; userName co "jens"
            userName sw "BJ"; userName ew "SEN"; userName gt "a"; userName ge "bjensen"
            userName lt "c"; userName le "BJENSEN"; name.familyName eq "jensen"
            emails co "example.com"; emails.value ew "jensen.org"; emails.type eq "home"
            emails.primary eq true; meta.lastModified gt "2011-05-13T04:42:33Z"
            meta.lastModified lt "2011-05-13T06:42:35+02:00"
            meta.lastModified ge "2011-05-13T04:42:34.000Z"
            meta.lastModified le "2011-05-13T04:42:34Z"; active eq true; active ne false
            loginCount eq 42.0; loginCount gt 4.1e1; loginCount le 42; loginCount lt 1e3
            title eq null; nickName eq null; userName ne null; userName pr; emails pr; name pr
            urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"
            urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915"
            urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b"
            URN:IETF:params:scim:schemas:extension:ENTERPRISE:2.0:user:EmployeeNumber pr"#;
        for f in yes.split([';', '\n']) {
            assert!(m(f.trim()), "expected match: {f}");
        }
        let no = r#"userName eq "x"; userName ne "BJENSEN"; userName co "z"; userName gt "c"
            name eq "Jensen"; emails.type eq "other"; meta.lastModified gt "2011-05-13T04:42:34Z"
            meta.lastModified lt "2011-05-13T04:42:34Z"; active eq false; active gt false
            loginCount co 4; loginCount gt 42; loginCount eq "42"; title pr; nickName pr
            userName eq null
            urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1"
            urn:ietf:params:scim:schemas:extension:other:2.0:User:employeeNumber pr"#;
        for f in no.split([';', '\n']) {
            assert!(!m(f.trim()), "expected no match: {f}");
        }
    }

    #[test]
    fn case_insensitivity_and_case_exact() {
        assert!(m(r#"USERNAME EQ "BJENSEN""#));
        assert!(m(r#"userName Sw "bJ" AnD NAME.FAMILYNAME pR"#));
        assert!(m("Active eq TRUE"));
        assert!(!check(r#"userName eq "bjensen""#, true));
        assert!(check(r#"userName eq "Bjensen""#, true));
        assert!(!check(r#"userName co "JENS""#, true));
        assert!(!m(r#"id eq "2819C223-7F76""#));
        assert!(m(r#"id sw "2819c223""#));
        assert!(!m(r#"emails.type eq "WORK""#));
        // Inside a value path the callback sees the outer attribute with the inner as sub.
        assert!(!m(r#"emails[type eq "WORK"]"#));
        assert!(m(r#"emails[type eq "work"]"#));
    }

    #[test]
    fn precedence_and_grouping() {
        let p = |n: &str| Box::new(Filter::Present(ap(None, n, None)));
        let expected = Filter::Or(
            p("a"),
            Box::new(Filter::And(p("b"), Box::new(Filter::Not(p("c"))))),
        );
        assert_eq!(
            parse_filter("a pr or b pr and not (c pr)").unwrap(),
            expected
        );
        let g = parse_filter("(a pr or b pr) and not(c pr)").unwrap();
        assert!(matches!(g, Filter::And(ref l, _) if matches!(**l, Filter::Or(..))));
        assert!(m("(title pr or userName pr) and not (active eq false)"));
        assert!(!m("(title pr or userName pr) and not (active eq true)"));
        assert!(m("title pr or userName pr and active eq true"));
        assert!(!m("(title pr or userName pr) and active eq false"));
        assert!(m(r#"userName eq "x" or  (  name.givenName  sw "bar"   )"#));
        assert!(m("not (not (userName pr))"));
    }

    #[test]
    fn value_paths() {
        assert!(m(r#"emails[type eq "work" and value co "example.com"]"#));
        assert!(!m(r#"emails[type eq "work" and value co "jensen.org"]"#));
        let f = r#"emails[type eq "home" or primary eq true] and userName sw "b""#;
        assert!(m(f));
        assert!(m(r#"emails[not (type eq "work")]"#));
        assert!(!m(r#"emails[type eq "work"] and userName sw "x""#));
        assert!(m(r#"name[givenName sw "bar"]"#));
        assert!(m(&format!("{ENT}:manager[value pr]")));
        let inner = Filter::Compare(ap(None, "type", None), CompareOp::Eq, json!("work"));
        let expected = Filter::ValuePath(ap(None, "emails", None), Box::new(inner));
        assert_eq!(parse_filter(r#"emails[type eq "work"]"#).unwrap(), expected);
    }

    #[test]
    fn literals_and_escapes() {
        assert!(m(r#"displayName eq "Babs \"B\" Jens\u00e9n""#));
        assert!(m(r#"displayName co "\"b\"""#));
        let value = |f: &str| match parse_filter(f).unwrap() {
            Filter::Compare(_, _, v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("x eq -1.5E2"), json!(-150.0));
        assert_eq!(value("x eq NULL"), Value::Null);
        assert_eq!(value("x eq False"), json!(false));
        assert_eq!(value(r#"x eq "tab\tnew\nline""#), json!("tab\tnew\nline"));
        let dollar = parse_filter("$ref pr").unwrap();
        assert_eq!(dollar, Filter::Present(ap(None, "$ref", None)));
    }

    #[test]
    fn parse_errors() {
        let bad = r#"userName eq; userName xx "a"; (userName eq "a"; userName eq "a"); emails[type eq "w"
            emails[type eq "w"]]; userName eq "a" junk; userName eq "a" and
            userName eq "unterminated; userName eq bareword; userName eq 1x; not userName eq "a"
            emails[type eq "work"].value eq "x"; emails[members[value pr]]; name.a.b pr; 1abc pr
            urn:foo pr"#;
        for f in bad.split([';', '\n']).chain(["", "  "]) {
            assert!(parse_filter(f.trim()).is_err(), "expected error: {f}");
        }
        let err = |f: &str| parse_filter(f).unwrap_err().to_string();
        let op = "at character 9: expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr), found 'xx'";
        assert_eq!(err(r#"userName xx "a""#), op);
        let close =
            "at character 16: expected ')' to match the one at character 0, found end of input";
        assert_eq!(err(r#"(userName eq "a""#), close);
        let junk = "at character 16: expected 'and', 'or' or end of filter, found 'junk'";
        assert_eq!(err(r#"userName eq "a" junk"#), junk);
        let value = "at character 11: expected a value (string, number, true, false or null), found end of input";
        assert_eq!(err("userName eq"), value);
    }

    #[test]
    fn patch_paths() {
        // input | urn | attr | filter | sub
        let cases = r#"members | - | members | - | -
            name.familyName | - | name | - | familyName
            emails[type eq "work"].value | - | emails | type eq "work" | value
            members[value eq "2819c223"] | - | members | value eq "2819c223" | -
            ENT:manager.value | ENT | manager | - | value
            ENT:employeeNumber | ENT | employeeNumber | - | -
            ENT | ENT | | - | -"#;
        for line in cases.lines() {
            let line = line.trim().replace("ENT", ENT);
            let f: Vec<&str> = line.split('|').map(str::trim).collect();
            let opt = |i: usize| f.get(i).copied().filter(|s| *s != "-");
            let got = parse_patch_path(f[0]).unwrap_or_else(|e| panic!("{line}: {e}"));
            let attr = ap(opt(1), f[2], None);
            let filter = opt(3).map(|x| parse_filter(x).unwrap());
            let sub = opt(4).map(str::to_string);
            assert_eq!(got, PatchPath { attr, filter, sub }, "{line}");
        }
        let bad = r#"
            emails[type eq "w"
            emails[x pr].
            name.a.b
            a b
            emails[x pr]x"#;
        for p in bad.lines() {
            assert!(parse_patch_path(p.trim()).is_err(), "expected error: {p}");
        }
    }

    #[test]
    fn attr_paths_and_lookup() {
        let given = parse_attr_path("name.givenName").unwrap();
        assert_eq!(given, ap(None, "name", Some("givenName")));
        let manager = parse_attr_path(&format!("{ENT}:manager.value")).unwrap();
        assert_eq!(manager, ap(Some(ENT), "manager", Some("value")));
        assert!(parse_attr_path("name.").is_err());
        let user = json!({"userName": "b", "emails": [{"value": "x"}, {"value": "y"}],
            ENT: {"manager": {"value": "26118915"}}});
        assert_eq!(lookup(&user, &manager, CORE), vec![&json!("26118915")]);
        let values = parse_attr_path("EMAILS.Value").unwrap();
        assert_eq!(lookup(&user, &values, CORE), vec![&json!("x"), &json!("y")]);
        let bare = parse_attr_path(ENT).unwrap();
        assert_eq!(bare, ap(Some(ENT), "", None));
        assert_eq!(lookup(&user, &bare, CORE).len(), 1);
        let obj = user.as_object().unwrap();
        assert_eq!(get_ci(obj, "USERNAME"), Some(&json!("b")));
        assert_eq!(get_ci(obj, "nope"), None);
    }
}
