//! Where things are in a template file: line and column of every value, member name and
//! object end, by JSON pointer, so template errors can say where to look.
//!
//! serde_json keeps no positions in a `Value`, and template errors are found after parsing
//! (unknown members, missing properties, bad expressions), so the file is scanned once more
//! for positions; that happens only when there are errors to report. The scan assumes text
//! serde_json has already accepted.

use std::collections::HashMap;

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Positions in one file.
#[derive(Debug, Default)]
pub struct Positions {
    /// Where each value starts (for a member: its name), by JSON pointer.
    starts: HashMap<String, Position>,
}

impl Positions {
    /// Scans JSON text (already known to parse).
    pub fn of(text: &str) -> Self {
        let mut scanner = Scanner { chars: text.chars().peekable(), line: 1, column: 1, out: Self::default() };
        scanner.value(String::new(), None);
        scanner.out
    }

    /// Where the value at `pointer` starts; an object member is found at its name. A pointer
    /// that names nothing (a missing property) falls back to its nearest existing parent.
    pub fn at(&self, pointer: &str) -> Option<Position> {
        let mut p = pointer;
        loop {
            if let Some(found) = self.starts.get(p) {
                return Some(*found);
            }
            let (parent, _) = p.rsplit_once('/')?;
            p = parent;
        }
    }
}

/// A JSON pointer segment (RFC 6901 escaping).
pub fn segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

struct Scanner<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
    out: Positions,
}

impl Scanner<'_> {
    fn here(&self) -> Position {
        Position { line: self.line, column: self.column }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else if c != '\r' {
            self.column += 1;
        }
        Some(c)
    }

    fn skip_space(&mut self) {
        // A BOM is whitespace to the reader too.
        while matches!(self.chars.peek(), Some(c) if c.is_whitespace() || *c == '\u{feff}') {
            self.bump();
        }
    }

    /// One value at `pointer`; `start` is where its member name began, if it has one.
    fn value(&mut self, pointer: String, start: Option<Position>) {
        self.skip_space();
        let at = start.unwrap_or_else(|| self.here());
        self.out.starts.insert(pointer.clone(), at);
        match self.chars.peek() {
            Some('{') => {
                self.bump();
                loop {
                    self.skip_space();
                    match self.chars.peek() {
                        Some('}') | None => {
                            self.bump();
                            return;
                        }
                        Some(',') => {
                            self.bump();
                        }
                        Some('"') => {
                            let name_at = self.here();
                            let name = self.string();
                            self.skip_space();
                            self.bump(); // ':'
                            self.value(format!("{pointer}/{}", segment(&name)), Some(name_at));
                        }
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
            }
            Some('[') => {
                self.bump();
                let mut index = 0;
                loop {
                    self.skip_space();
                    match self.chars.peek() {
                        Some(']') | None => {
                            self.bump();
                            return;
                        }
                        Some(',') => {
                            self.bump();
                            index += 1;
                        }
                        Some(_) => self.value(format!("{pointer}/{index}"), None),
                    }
                }
            }
            Some('"') => {
                self.string();
            }
            _ => {
                while matches!(self.chars.peek(), Some(c) if !matches!(c, ',' | '}' | ']') && !c.is_whitespace()) {
                    self.bump();
                }
            }
        }
    }

    /// A string token, unescaped (enough for member names).
    fn string(&mut self) -> String {
        self.bump(); // opening quote
        let mut text = String::new();
        while let Some(c) = self.bump() {
            match c {
                '"' => break,
                '\\' => match self.bump() {
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        text.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                    }
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('r') => text.push('\r'),
                    Some('b') => text.push('\u{8}'),
                    Some('f') => text.push('\u{c}'),
                    Some(other) => text.push(other),
                    None => break,
                },
                other => text.push(other),
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_member_names_are_found_by_pointer() {
        let text = "\u{feff}{\r\n  \"templateType\": \"CollectionContent\",\r\n  \"template\": [\r\n    { \"a/b\": [1, {\"x\": \"\\\"y\"}] },\r\n    {}\r\n  ]\r\n}";
        let p = Positions::of(text);
        assert_eq!(p.at(""), Some(Position { line: 1, column: 2 }), "after the BOM");
        assert_eq!(p.at("/templateType"), Some(Position { line: 2, column: 3 }), "a member is found at its name");
        assert_eq!(p.at("/template/0"), Some(Position { line: 4, column: 5 }));
        assert_eq!(p.at("/template/0/a~1b/1/x"), Some(Position { line: 4, column: 19 }));
        assert_eq!(p.at("/template/1"), Some(Position { line: 5, column: 5 }));
        assert_eq!(p.at("/template/1/typeName"), Some(Position { line: 5, column: 5 }), "a missing member: its object");
        assert_eq!(p.at("/nothing/deeper"), Some(Position { line: 1, column: 2 }));
    }
}
