//! JSONPath in the dialect the connector's templates are written in: Json.NET's `SelectTokens`
//! (`Newtonsoft.Json/Linq/JsonPath`), not RFC 9535. The differences that matter to templates
//! (see `docs/iomt-fhir/normalization.md` §3.1 and `docs/iomt-fhir/crates.md` for why no RFC
//! crate serves):
//!
//! - `@name` in a filter is `@.name`; `$` inside a filter is the token the query started on;
//! - `..[?(...)]` tests every descendant **and the token itself**, in document order;
//! - `[?(...)]` tests the elements of an array; on an object it selects nothing;
//! - `&&` and `||` nest to the right (`a && b || c` is `a && (b || c)`), parentheses inside a
//!   filter do not group;
//! - a bare path in a filter tests existence (a `null`, `false` or `0` exists);
//! - string literals are single-quoted; `==` with a string literal compares the value's text
//!   (so `@.n == '5'` holds for the number 5), and an integer equals the same float;
//! - a negative single index selects nothing; slices take negative bounds.
//!
//! Not supported (refused when the path is parsed, so a template using them is reported):
//! regular expressions (`=~`) and `===`/`!==`.

use serde_json::Value;

/// A parsed path, evaluated many times.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    segments: Vec<Segment>,
    /// The path as written.
    source: String,
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `.name`, or `.*` (`None`).
    Field(Option<String>),
    /// `..name`, or `..*` (`None`).
    Scan(Option<String>),
    /// `['a','b']`.
    Names(Vec<String>),
    /// `[0]`, `[0,2]`.
    Indexes(Vec<i64>),
    /// `[a:b:c]`.
    Slice(Option<i64>, Option<i64>, Option<i64>),
    /// `[*]`.
    Elements,
    /// `[?(...)]`: the elements of arrays that match.
    Filter(Expr),
    /// `..[?(...)]`: the token and its descendants that match.
    ScanFilter(Expr),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Exists(Operand),
    Compare(Operand, Op, Operand),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `@...`: from the token under test.
    Current(JsonPath),
    /// `$...`: from the token the query started on.
    Root(JsonPath),
    Literal(Value),
}

/// Why a path could not be parsed, with the character position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSONPath '{path}': {reason} at position {position}")]
pub struct PathError {
    pub path: String,
    pub position: usize,
    pub reason: String,
}

impl JsonPath {
    /// Parses a path (`$.Body.hr`, `$..[?(@heartrate)]`, `Body.hr` relative to the token).
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let mut parser = Parser { text: path, chars: path.char_indices().collect(), at: 0 };
        let parsed = parser.path(true)?;
        match parser.peek() {
            None => Ok(JsonPath { source: path.to_owned(), ..parsed }),
            Some(c) => Err(parser.error(format!("unexpected character '{c}'"))),
        }
    }

    /// The tokens the path selects from `token`, in Json.NET's order.
    pub fn select<'a>(&self, token: &'a Value) -> Vec<&'a Value> {
        self.select_from(token, token)
    }

    fn select_from<'a>(&self, token: &'a Value, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![token];
        for segment in &self.segments {
            let mut next = Vec::new();
            for t in current {
                segment.apply(t, root, &mut next);
            }
            current = next;
        }
        current
    }
}

impl Segment {
    fn apply<'a>(&self, t: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
        match self {
            Segment::Field(Some(name)) => out.extend(t.as_object().and_then(|o| o.get(name))),
            Segment::Field(None) => out.extend(t.as_object().into_iter().flat_map(|o| o.values())),
            Segment::Scan(name) => scan(t, name.as_deref(), out),
            Segment::Names(names) => {
                if let Some(o) = t.as_object() {
                    out.extend(names.iter().filter_map(|n| o.get(n)));
                }
            }
            Segment::Indexes(indexes) => {
                if let Some(a) = t.as_array() {
                    out.extend(indexes.iter().filter_map(|i| usize::try_from(*i).ok().and_then(|i| a.get(i))));
                }
            }
            Segment::Slice(start, end, step) => {
                if let Some(a) = t.as_array() {
                    slice(a, *start, *end, *step, out);
                }
            }
            Segment::Elements => out.extend(t.as_array().into_iter().flatten()),
            Segment::Filter(expr) => out.extend(t.as_array().into_iter().flatten().filter(|v| expr.matches(v, root))),
            Segment::ScanFilter(expr) => {
                let mut all = vec![t];
                descendants(t, &mut all);
                out.extend(all.into_iter().filter(|v| expr.matches(v, root)));
            }
        }
    }
}

/// Every value below `t`, in document order (pre-order).
fn descendants<'a>(t: &'a Value, out: &mut Vec<&'a Value>) {
    let children: Box<dyn Iterator<Item = &'a Value>> = match t {
        Value::Object(o) => Box::new(o.values()),
        Value::Array(a) => Box::new(a.iter()),
        _ => return,
    };
    for child in children {
        out.push(child);
        descendants(child, out);
    }
}

/// `..name`: the values of properties so named below `t`; `..*`: every value below it.
fn scan<'a>(t: &'a Value, name: Option<&str>, out: &mut Vec<&'a Value>) {
    match t {
        Value::Object(o) => {
            for (key, value) in o {
                if name.is_none_or(|n| n == key) {
                    out.push(value);
                }
                scan(value, name, out);
            }
        }
        Value::Array(a) => {
            for value in a {
                if name.is_none() {
                    out.push(value);
                }
                scan(value, name, out);
            }
        }
        _ => {}
    }
}

fn slice<'a>(a: &'a [Value], start: Option<i64>, end: Option<i64>, step: Option<i64>, out: &mut Vec<&'a Value>) {
    let len = a.len() as i64;
    let step = step.unwrap_or(1);
    let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    if step > 0 {
        let (mut i, end) = (clamp(start.unwrap_or(0)), clamp(end.unwrap_or(len)));
        while i < end {
            out.push(&a[i as usize]);
            i += step;
        }
    } else if step < 0 {
        let mut i = start.map_or(len - 1, |s| if s < 0 { len + s } else { s.min(len - 1) });
        let end = end.map_or(-1, |e| if e < 0 { (len + e).max(-1) } else { e });
        while i > end && i >= 0 {
            out.push(&a[i as usize]);
            i += step;
        }
    }
}

impl Expr {
    fn matches(&self, v: &Value, root: &Value) -> bool {
        match self {
            Expr::Exists(operand) => !operand.values(v, root).is_empty(),
            Expr::And(a, b) => a.matches(v, root) && b.matches(v, root),
            Expr::Or(a, b) => a.matches(v, root) || b.matches(v, root),
            Expr::Compare(left, op, right) => {
                let (lefts, rights) = (left.values(v, root), right.values(v, root));
                lefts.iter().any(|l| rights.iter().any(|r| compare(l, *op, r)))
            }
        }
    }
}

impl Operand {
    fn values<'a>(&'a self, v: &'a Value, root: &'a Value) -> Vec<&'a Value> {
        match self {
            Operand::Current(path) => path.select_from(v, root),
            Operand::Root(path) => path.select_from(root, root),
            Operand::Literal(value) => vec![value],
        }
    }
}

/// Json.NET's `BooleanQueryExpression.MatchTokens` over two values.
fn compare(left: &Value, op: Op, right: &Value) -> bool {
    let scalar = |v: &Value| !v.is_object() && !v.is_array();
    if !(scalar(left) && scalar(right)) {
        // Only "not equal" holds between a container and anything.
        return op == Op::Ne;
    }
    match op {
        Op::Eq => equals_with_string_coercion(left, right),
        Op::Ne => !equals_with_string_coercion(left, right),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let ordering = match (left, right) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
                (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                _ => None,
            };
            ordering.is_some_and(|o| match op {
                Op::Lt => o.is_lt(),
                Op::Le => o.is_le(),
                Op::Gt => o.is_gt(),
                _ => o.is_ge(),
            })
        }
    }
}

fn equals_with_string_coercion(value: &Value, query: &Value) -> bool {
    match (value, query) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (_, Value::String(q)) => match value {
            Value::String(s) => s == q,
            Value::Number(n) => n.to_string() == *q,
            Value::Bool(b) => (if *b { "True" } else { "False" }) == q,
            _ => false,
        },
        _ => value == query,
    }
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).map(|(_, c)| *c)
    }

    fn error(&self, reason: String) -> PathError {
        PathError { path: self.text.to_owned(), position: self.at, reason }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.at += 1;
        }
    }

    /// A path: at the top level it ends at the end of the text; in a filter operand, at a
    /// space, an operator or the filter's closing parenthesis.
    fn path(&mut self, top: bool) -> Result<JsonPath, PathError> {
        let mut segments = Vec::new();
        // The first name may come without a dot (`Body.x`, or `@name` in a filter).
        if let Some(c) = self.peek() {
            if c != '.' && c != '[' && !self.ends_operand(c, top) {
                segments.push(Segment::Field(Some(self.name()?)));
            }
        }
        loop {
            match self.peek() {
                None => break,
                Some(c) if self.ends_operand(c, top) => break,
                Some('.') if self.peek_at(1) == Some('.') => {
                    self.at += 2;
                    match self.peek() {
                        Some('[') => {
                            let bracket = self.bracket()?;
                            segments.push(match bracket {
                                Segment::Filter(expr) => Segment::ScanFilter(expr),
                                Segment::Names(names) if names.len() == 1 => Segment::Scan(names.into_iter().next()),
                                other => return Err(self.error(format!("'..' cannot be followed by {other:?}"))),
                            });
                        }
                        Some('*') => {
                            self.at += 1;
                            segments.push(Segment::Scan(None));
                        }
                        _ => segments.push(Segment::Scan(Some(self.name()?))),
                    }
                }
                Some('.') => {
                    self.at += 1;
                    if self.eat('*') {
                        segments.push(Segment::Field(None));
                    } else if self.peek() == Some('[') {
                        segments.push(self.bracket()?);
                    } else {
                        segments.push(Segment::Field(Some(self.name()?)));
                    }
                }
                Some('[') => segments.push(self.bracket()?),
                Some(c) if top && c == ' ' => {
                    self.skip_spaces();
                    if let Some(c) = self.peek() {
                        return Err(self.error(format!("unexpected character '{c}' after a space")));
                    }
                }
                Some(c) => return Err(self.error(format!("unexpected character '{c}'"))),
            }
        }
        Ok(JsonPath { segments, source: String::new() })
    }

    fn ends_operand(&self, c: char, top: bool) -> bool {
        !top && matches!(c, ' ' | ')' | '=' | '!' | '<' | '>' | '&' | '|')
    }

    /// A name in dot notation: up to the next `.`, `[`, space, operator or parenthesis.
    fn name(&mut self) -> Result<String, PathError> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if matches!(c, '.' | '[' | ']' | ' ' | '(' | ')' | '=' | '!' | '<' | '>' | '&' | '|') {
                break;
            }
            self.at += 1;
        }
        if self.at == start {
            return Err(self.error("expected a property name".into()));
        }
        Ok(self.chars[start..self.at].iter().map(|(_, c)| c).collect())
    }

    fn bracket(&mut self) -> Result<Segment, PathError> {
        self.eat('[');
        self.skip_spaces();
        let segment = match self.peek() {
            Some('?') => {
                self.at += 1;
                if !self.eat('(') {
                    return Err(self.error("expected '(' after '?'".into()));
                }
                let expr = self.expression()?;
                self.skip_spaces();
                if !self.eat(')') {
                    return Err(self.error("expected ')' to close the filter".into()));
                }
                Segment::Filter(expr)
            }
            Some('*') => {
                self.at += 1;
                Segment::Elements
            }
            Some('\'') => {
                let mut names = vec![self.quoted()?];
                while {
                    self.skip_spaces();
                    self.eat(',')
                } {
                    self.skip_spaces();
                    names.push(self.quoted()?);
                }
                Segment::Names(names)
            }
            _ => self.indexes_or_slice()?,
        };
        self.skip_spaces();
        if !self.eat(']') {
            return Err(self.error("expected ']'".into()));
        }
        Ok(segment)
    }

    fn integer(&mut self) -> Result<Option<i64>, PathError> {
        self.skip_spaces();
        let start = self.at;
        if self.peek() == Some('-') {
            self.at += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at == start {
            return Ok(None);
        }
        let text: String = self.chars[start..self.at].iter().map(|(_, c)| c).collect();
        text.parse().map(Some).map_err(|_| self.error(format!("'{text}' is not an integer")))
    }

    fn indexes_or_slice(&mut self) -> Result<Segment, PathError> {
        let first = self.integer()?;
        self.skip_spaces();
        if self.eat(':') {
            let end = self.integer()?;
            self.skip_spaces();
            let step = if self.eat(':') { self.integer()? } else { None };
            if step == Some(0) {
                return Err(self.error("a slice step cannot be 0".into()));
            }
            return Ok(Segment::Slice(first, end, step));
        }
        let Some(first) = first else { return Err(self.error("expected an index, a slice, '*', a quoted name or a filter".into())) };
        let mut indexes = vec![first];
        while self.eat(',') {
            indexes.push(self.integer()?.ok_or_else(|| self.error("expected an index".into()))?);
        }
        Ok(Segment::Indexes(indexes))
    }

    fn quoted(&mut self) -> Result<String, PathError> {
        if !self.eat('\'') {
            return Err(self.error("expected a single-quoted string".into()));
        }
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string".into())),
                Some('\'') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.at += 1;
                    let escaped = self.peek().ok_or_else(|| self.error("unterminated escape".into()))?;
                    self.at += 1;
                    out.push(match escaped {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        other => other,
                    });
                }
                Some(c) => {
                    self.at += 1;
                    out.push(c);
                }
            }
        }
    }

    /// `a && b || c` nests to the right, as Json.NET builds it.
    fn expression(&mut self) -> Result<Expr, PathError> {
        let left = self.comparison()?;
        self.skip_spaces();
        if self.peek() == Some('&') && self.peek_at(1) == Some('&') {
            self.at += 2;
            return Ok(Expr::And(Box::new(left), Box::new(self.expression()?)));
        }
        if self.peek() == Some('|') && self.peek_at(1) == Some('|') {
            self.at += 2;
            return Ok(Expr::Or(Box::new(left), Box::new(self.expression()?)));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, PathError> {
        self.skip_spaces();
        let left = self.operand()?;
        self.skip_spaces();
        let op = match (self.peek(), self.peek_at(1), self.peek_at(2)) {
            (Some('='), Some('='), Some('=')) | (Some('!'), Some('='), Some('=')) | (Some('='), Some('~'), _) => {
                return Err(self.error("'===', '!==' and '=~' are not supported".into()));
            }
            (Some('='), Some('='), _) => Some((Op::Eq, 2)),
            (Some('!'), Some('='), _) => Some((Op::Ne, 2)),
            (Some('<'), Some('='), _) => Some((Op::Le, 2)),
            (Some('>'), Some('='), _) => Some((Op::Ge, 2)),
            (Some('<'), _, _) => Some((Op::Lt, 1)),
            (Some('>'), _, _) => Some((Op::Gt, 1)),
            _ => None,
        };
        let Some((op, width)) = op else {
            return match left {
                Operand::Literal(_) => Err(self.error("a filter needs a path to test".into())),
                path => Ok(Expr::Exists(path)),
            };
        };
        self.at += width;
        self.skip_spaces();
        let right = self.operand()?;
        Ok(Expr::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, PathError> {
        match self.peek() {
            Some('@') => {
                self.at += 1;
                Ok(Operand::Current(self.path(false)?))
            }
            Some('$') => {
                self.at += 1;
                Ok(Operand::Root(self.path(false)?))
            }
            Some('\'') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let start = self.at;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().map(|(_, c)| c).collect();
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(Value::is_number)
                    .map(Operand::Literal)
                    .ok_or_else(|| self.error(format!("'{text}' is not a number")))
            }
            _ => {
                for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)] {
                    if self.text[self.chars.get(self.at).map_or(self.text.len(), |(i, _)| *i)..].starts_with(word) {
                        self.at += word.len();
                        return Ok(Operand::Literal(value));
                    }
                }
                Err(self.error("expected '@', '$', a quoted string, a number, true, false or null".into()))
            }
        }
    }
}

/// Parses `path`, taking a leading `$` (followed by `.` or `[`) as the token itself.
pub fn compile(path: &str) -> Result<JsonPath, PathError> {
    let trimmed = path.trim();
    let relative = match trimmed.strip_prefix('$') {
        Some("") => "",
        Some(rest) if rest.starts_with('.') || rest.starts_with('[') => rest,
        _ => trimmed,
    };
    JsonPath::parse(relative).map(|p| JsonPath { source: path.to_owned(), ..p }).map_err(|e| PathError { path: path.to_owned(), ..e })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(path: &str, doc: &Value) -> Vec<Value> {
        compile(path).unwrap_or_else(|e| panic!("{e}")).select(doc).into_iter().cloned().collect()
    }

    #[test]
    fn dot_bracket_index_slice_and_wildcards() {
        let doc = json!({"Body": {"hr": 78, "list": [1, 2, 3, 4], "My Property": "x"}, "Properties": {}});
        assert_eq!(select("$.Body.hr", &doc), [json!(78)]);
        assert_eq!(select("Body.hr", &doc), [json!(78)], "relative to the token");
        assert_eq!(select("$", &doc), vec![doc.clone()]);
        assert_eq!(select("$.Body['My Property']", &doc), [json!("x")]);
        assert_eq!(select("$['Body']['hr']", &doc), [json!(78)]);
        assert_eq!(select("$.Body.list[1]", &doc), [json!(2)]);
        assert_eq!(select("$.Body.list[0,2]", &doc), [json!(1), json!(3)]);
        assert!(select("$.Body.list[9]", &doc).is_empty());
        assert!(select("$.Body.list[-1]", &doc).is_empty(), "no index from the end");
        assert_eq!(select("$.Body.list[-2:]", &doc), [json!(3), json!(4)]);
        assert_eq!(select("$.Body.list[::2]", &doc), [json!(1), json!(3)]);
        assert_eq!(select("$.Body.list[*]", &doc).len(), 4);
        assert_eq!(select("$..hr", &doc), [json!(78)]);
        assert!(select("$.Body.hr.deeper", &doc).is_empty());
        assert!(select("$.body.hr", &doc).is_empty(), "names are case-sensitive");
    }

    #[test]
    fn filters_follow_json_net() {
        let single = json!({"Body": {"heartrate": 78}});
        // `@name` without a dot, and `..[?()]` testing the root itself.
        assert_eq!(select("$..[?(@Body.heartrate)]", &single), vec![single.clone()]);
        assert_eq!(select("$..[?(@.Body.heartrate)]", &single), vec![single.clone()]);
        let many = json!({"Body": [{"hr": 70, "t": "a"}, {"hr": 80}, {"steps": 3}]});
        assert_eq!(select("$..[?(@hr)]", &many), [json!({"hr": 70, "t": "a"}), json!({"hr": 80})]);
        assert_eq!(select("$.Body[?(@.hr > 75)]", &many), [json!({"hr": 80})]);
        assert_eq!(select("$.Body[?(@.hr == '70')]", &many).len(), 1, "== with a string compares the value's text");
        assert_eq!(select("$.Body[?(@.hr && @.t)]", &many).len(), 1);
        assert_eq!(select("$.Body[?(@.steps || @.t)]", &many).len(), 2);
        assert!(select("$.Body[0][?(@.hr)]", &many).is_empty(), "a filter on an object selects nothing");
        // Right nesting: `a && b || c` is `a && (b || c)`.
        let rows = json!([{"a": 1}, {"c": 1}, {"a": 1, "c": 1}]);
        assert_eq!(select("$[?(@.a && @.b || @.c)]", &rows), [json!({"a": 1, "c": 1})]);
        // A present null, false or 0 exists.
        assert_eq!(select("$[?(@.x)]", &json!([{"x": null}, {"x": false}, {"x": 0}, {}])).len(), 3);
        // `$` in a filter is the token the query started on.
        let doc = json!({"limit": 75, "Body": [{"hr": 70}, {"hr": 80}]});
        assert_eq!(select("$.Body[?(@.hr > $.limit)]", &doc), [json!({"hr": 80})]);
    }

    #[test]
    fn bad_paths_are_refused_with_where() {
        for bad in ["$.Body[", "$.Body[?(@.hr =~ /7/)]", "$.Body[?(@.hr == \"x\")]", "$.a b", "$.Body[?(@.hr)"] {
            let e = compile(bad).unwrap_err();
            assert_eq!(e.path, bad);
            assert!(!e.reason.is_empty());
        }
    }
}
