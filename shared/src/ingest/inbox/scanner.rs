//! Splits an inbox file into readings as its bytes arrive, without holding the file: a single
//! reading object, a batch `{"device_id", "readings": [...]}` (each element handed out as it
//! completes), or NDJSON (one value per line). Only the reading being read is buffered.

/// Where to start reading the file again to go on after a reading: at `offset` (a byte
/// between top-level values, where a fresh scanner can start), skipping the first `skip`
/// readings found there (those of a batch object already handled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub offset: u64,
    pub skip: u64,
}

/// What the scanner found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A reading's JSON text, the batch's `device_id` when it came from a batch, and where to
    /// resume after it.
    Reading { text: String, batch_device: Option<String>, resume: Resume },
    /// The file is not JSON of an accepted shape from this point on.
    Malformed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between top-level values.
    Top,
    /// Inside a top-level object, capturing it.
    Object,
    /// Inside a top-level batch object, outside its `readings` array.
    Batch,
    /// Inside the `readings` array of a batch.
    Readings,
}

/// The scanner's state; feed it bytes, then [`Scanner::finish`].
#[derive(Debug)]
pub struct Scanner {
    mode: Mode,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// The value being captured (a top-level object, or a batch element).
    capture: Vec<u8>,
    /// At depth 1 of the top-level object: whether the next string is a key.
    expect_key: bool,
    /// The last key read at depth 1, and the string being read if it is one.
    key: Vec<u8>,
    reading_key: bool,
    current_key: String,
    /// A batch's `device_id`, and elements met before it.
    batch_device: Option<String>,
    device_value: Option<Vec<u8>>,
    pending: Vec<String>,
    pending_bytes: usize,
    broken: bool,
    /// Bytes of the file before the next one fed (the scanner may start mid-file).
    consumed: u64,
    /// The last point between top-level values, and the readings handed out since.
    boundary: u64,
    since_boundary: u64,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            mode: Mode::Top,
            depth: 0,
            in_string: false,
            escape: false,
            capture: Vec::new(),
            expect_key: false,
            key: Vec::new(),
            reading_key: false,
            current_key: String::new(),
            batch_device: None,
            device_value: None,
            pending: Vec::new(),
            pending_bytes: 0,
            broken: false,
            consumed: 0,
            boundary: 0,
            since_boundary: 0,
        }
    }
}

/// Readings larger than this are refused rather than buffered.
pub const MAX_READING_BYTES: usize = 64 * 1024;
/// Batch elements held while waiting for a `device_id` that comes after `readings`: beyond this
/// the file is refused (memory must not grow with the file).
pub const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

impl Scanner {
    /// A scanner starting at `offset`, which must be a [`Resume::offset`] of an earlier scan.
    pub fn resumed_at(offset: u64) -> Self {
        Self { consumed: offset, boundary: offset, ..Self::default() }
    }

    /// Hands out a reading, which is resumed after at the last boundary, skipping it and those before it.
    fn emit(&mut self, out: &mut Vec<Found>, text: String, batch_device: Option<String>) {
        self.since_boundary += 1;
        out.push(Found::Reading { text, batch_device, resume: Resume { offset: self.boundary, skip: self.since_boundary } });
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn emit_element(&mut self, out: &mut Vec<Found>) {
        let text = Self::text(&std::mem::take(&mut self.capture));
        match self.batch_device.clone() {
            Some(d) => self.emit(out, text, Some(d)),
            // `device_id` may come after `readings`: hold the elements until the object ends.
            None => {
                self.pending_bytes += text.len();
                self.pending.push(text);
                if self.pending_bytes > MAX_PENDING_BYTES {
                    self.pending.clear();
                    self.fail(out, format!("a batch over {MAX_PENDING_BYTES} bytes must give device_id before readings"));
                }
            }
        }
    }

    /// Hands out a non-object element (so that it is refused by name) and clears the capture.
    fn emit_scalar(&mut self, out: &mut Vec<Found>) {
        if self.capture.iter().all(u8::is_ascii_whitespace) {
            self.capture.clear();
        } else {
            let trimmed = Self::text(&self.capture).trim().to_owned();
            self.capture = trimmed.into_bytes();
            self.emit_element(out);
        }
    }

    fn fail(&mut self, out: &mut Vec<Found>, why: String) {
        if !self.broken {
            self.broken = true;
            out.push(Found::Malformed(why));
        }
    }

    /// Feeds the next bytes; readings completed by them are pushed to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Found>) {
        let start = self.consumed;
        self.consumed += bytes.len() as u64;
        for (i, &b) in bytes.iter().enumerate() {
            if self.broken {
                return;
            }
            // Just after this byte: where a top-level value that it closes ends.
            let after = start + i as u64 + 1;
            let capturing = matches!(self.mode, Mode::Object) || (self.mode == Mode::Readings && self.depth >= 2);
            if capturing {
                self.capture.push(b);
                if self.capture.len() > MAX_READING_BYTES {
                    self.fail(out, format!("a reading is larger than {MAX_READING_BYTES} bytes"));
                    return;
                }
            }
            if let Some(v) = self.device_value.as_mut() {
                v.push(b);
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.reading_key {
                        self.reading_key = false;
                        self.current_key = Self::text(&self.key);
                    }
                    if self.depth == 1 && self.device_value.is_some() {
                        self.finish_device_value();
                    }
                    continue;
                }
                if self.reading_key {
                    self.key.push(b);
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.expect_key && self.mode != Mode::Top {
                        self.expect_key = false;
                        self.reading_key = true;
                        self.key.clear();
                    } else if self.depth == 1 && self.current_key == "device_id" && self.mode != Mode::Top {
                        self.device_value = Some(vec![b'"']);
                    }
                }
                b'{' | b'[' => {
                    if self.depth == 0 {
                        if b == b'[' {
                            self.fail(out, "a file holds a reading object, a batch object or one object per line, not an array".into());
                            return;
                        }
                        self.mode = Mode::Object;
                        self.capture = vec![b'{'];
                        self.expect_key = true;
                    } else if self.depth == 1 && b == b'[' && self.current_key == "readings" {
                        // A batch: forget the object so far, hand out elements one by one.
                        self.mode = Mode::Readings;
                        self.capture.clear();
                    } else if self.depth == 2 && self.mode == Mode::Readings {
                        self.capture = vec![b];
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        self.fail(out, "unbalanced brackets".into());
                        return;
                    }
                    self.depth -= 1;
                    match (self.mode, self.depth) {
                        (Mode::Object, 0) => {
                            let text = Self::text(&std::mem::take(&mut self.capture));
                            self.emit(out, text, None);
                            self.reset_top(after);
                        }
                        (Mode::Readings, 2) => self.emit_element(out),
                        (Mode::Readings, 1) => {
                            // A scalar last element, before the closing bracket.
                            self.capture.pop();
                            self.emit_scalar(out);
                            self.mode = Mode::Batch;
                        }
                        (Mode::Batch, 0) => {
                            self.pending_bytes = 0;
                            for text in std::mem::take(&mut self.pending) {
                                let device = self.batch_device.clone();
                                self.emit(out, text, device);
                            }
                            self.reset_top(after);
                        }
                        _ => {}
                    }
                }
                b',' if self.depth == 1 => {
                    self.expect_key = true;
                    if self.device_value.is_some() {
                        self.finish_device_value();
                    }
                }
                b',' if self.depth == 2 && self.mode == Mode::Readings => {
                    // Separator between elements: ends a scalar element, if that is what it was.
                    self.capture.pop();
                    self.emit_scalar(out);
                }
                b if b.is_ascii_whitespace() => {
                    if self.depth == 2 && self.mode == Mode::Readings && self.capture.len() == 1 {
                        self.capture.clear();
                    }
                }
                _ if self.depth == 0 => {
                    self.fail(out, format!("unexpected {:?} outside a JSON object", b as char));
                    return;
                }
                _ => {
                    if self.depth == 2 && self.mode == Mode::Readings && self.capture.len() == 1 {
                        // A scalar element (not an object): keep it so that it is refused by name.
                        self.capture = vec![b];
                    }
                }
            }
        }
    }

    fn finish_device_value(&mut self) {
        if let Some(v) = self.device_value.take() {
            let text = Self::text(&v);
            self.batch_device = serde_json::from_str::<String>(text.trim().trim_end_matches(',')).ok();
        }
    }

    /// Back between top-level values, at `boundary`.
    fn reset_top(&mut self, boundary: u64) {
        self.boundary = boundary;
        self.since_boundary = 0;
        self.mode = Mode::Top;
        self.expect_key = false;
        self.current_key.clear();
        self.batch_device = None;
        self.device_value = None;
    }

    /// Ends the file: anything left open is malformed.
    pub fn finish(mut self, out: &mut Vec<Found>) {
        if !self.broken && (self.depth > 0 || self.in_string) {
            self.fail(out, "the file ends inside a JSON value".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_chunks(text: &str, chunk: usize) -> Vec<Found> {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        for part in text.as_bytes().chunks(chunk) {
            s.feed(part, &mut out);
        }
        s.finish(&mut out);
        out
    }

    fn readings(found: &[Found]) -> Vec<(serde_json::Value, Option<String>)> {
        found
            .iter()
            .filter_map(|f| match f {
                Found::Reading { text, batch_device, .. } => Some((serde_json::from_str(text).unwrap(), batch_device.clone())),
                Found::Malformed(_) => None,
            })
            .collect()
    }

    #[test]
    fn single_batch_and_ndjson_files_split_the_same_whatever_the_chunking() {
        let single = r#"{"device_id": "D1", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75, "notes": "a } and a \" inside"}"#;
        let batch = r#"{"device_id": "D1", "readings": [ {"timestamp": "t1", "heart_rate": 75} , {"timestamp": "t2", "nested": {"a": [1, 2]}} ]}"#;
        let late = r#"{"readings": [{"timestamp": "t1"}], "device_id": "D9"}"#;
        let ndjson = "{\"device_id\": \"D1\", \"heart_rate\": 1}\n\n{\"device_id\": \"D2\", \"heart_rate\": 2}\n";
        for chunk in [1, 3, 7, 1000] {
            let r = readings(&scan_in_chunks(single, chunk));
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].0["notes"], "a } and a \" inside");
            let r = readings(&scan_in_chunks(batch, chunk));
            assert_eq!(r.len(), 2, "chunk {chunk}");
            assert_eq!((r[0].0["timestamp"].as_str(), r[0].1.as_deref()), (Some("t1"), Some("D1")));
            assert_eq!(r[1].0["nested"]["a"][1], 2);
            let r = readings(&scan_in_chunks(late, chunk));
            assert_eq!(r[0].1.as_deref(), Some("D9"), "device_id after readings");
            let found = scan_in_chunks(r#"{"device_id": "D1", "readings": [1, "x", {"a": 1}, true]}"#, chunk);
            let texts: Vec<_> = found.iter().map(|f| match f { Found::Reading { text, .. } => text.clone(), Found::Malformed(m) => m.clone() }).collect();
            assert_eq!(texts, ["1", "\"x\"", "{\"a\": 1}", "true"], "scalar elements are handed out to be refused");
            let r = readings(&scan_in_chunks(ndjson, chunk));
            assert_eq!(r.iter().map(|(v, _)| v["device_id"].as_str().unwrap()).collect::<Vec<_>>(), ["D1", "D2"]);
        }
    }

    /// The texts of the readings found, and where to resume after each.
    fn found_with_resume(found: Vec<Found>) -> Vec<(String, Resume)> {
        found
            .into_iter()
            .filter_map(|f| match f {
                Found::Reading { text, resume, .. } => Some((text, resume)),
                Found::Malformed(_) => None,
            })
            .collect()
    }

    #[test]
    fn resuming_after_any_reading_finds_exactly_the_readings_after_it() {
        let files = [
            "{\"device_id\": \"D1\", \"heart_rate\": 1}\n{\"device_id\": \"D1\", \"heart_rate\": 2}\n\n{\"device_id\": \"D2\", \"heart_rate\": 3}\n",
            r#"{"device_id": "D1", "readings": [{"heart_rate": 1}, {"heart_rate": 2}, {"heart_rate": 3}]}"#,
            r#"{"readings": [{"heart_rate": 1}, {"heart_rate": 2}], "device_id": "D9"} {"device_id": "D1", "readings": [{"heart_rate": 3}]}"#,
            "{\"device_id\": \"D1\", \"heart_rate\": 1}\n{\"device_id\": \"D1\", \"readings\": [{\"heart_rate\": 2}, {\"heart_rate\": 3}]}\n",
        ];
        for file in files {
            let all = found_with_resume(scan_in_chunks(file, 5));
            assert_eq!(all.len(), 3, "{file}");
            for (i, (_, resume)) in all.iter().enumerate() {
                let offset = usize::try_from(resume.offset).unwrap();
                let mut s = Scanner::resumed_at(resume.offset);
                let mut out = Vec::new();
                for part in file.as_bytes()[offset..].chunks(3) {
                    s.feed(part, &mut out);
                }
                s.finish(&mut out);
                let rest = found_with_resume(out);
                let skip = usize::try_from(resume.skip).unwrap();
                assert!(rest.len() >= skip, "{file} after {i}");
                let expected: Vec<_> = all[i + 1..].iter().map(|(t, _)| t.clone()).collect();
                assert_eq!(rest[skip..].iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(), expected, "{file} after reading {i}");
                // The resumed scan's own resume points are the first scan's.
                assert_eq!(rest[skip..].iter().map(|(_, r)| *r).collect::<Vec<_>>(), all[i + 1..].iter().map(|(_, r)| *r).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_huge_batch_without_a_leading_device_id_is_refused_not_buffered() {
        let element = r#"{"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75},"#;
        let mut s = Scanner::default();
        let mut out = Vec::new();
        s.feed(br#"{"readings": ["#, &mut out);
        for _ in 0..(2 * MAX_PENDING_BYTES / element.len()) {
            s.feed(element.as_bytes(), &mut out);
        }
        assert!(matches!(out.last(), Some(Found::Malformed(m)) if m.contains("device_id before readings")), "{:?}", out.last());
        assert!(s.pending.is_empty());
    }

    #[test]
    fn malformed_files_are_named() {
        for bad in ["{\"device_id\": \"D1\", ", "not json", "[{\"a\": 1}]", "{\"a\": 1}}"] {
            let found = scan_in_chunks(bad, 4);
            assert!(matches!(found.last(), Some(Found::Malformed(_))), "{bad}: {found:?}");
        }
        // Readings before the break are still handed out.
        let found = scan_in_chunks("{\"device_id\": \"D1\", \"heart_rate\": 1}\n{\"device_id\": ", 5);
        assert_eq!(readings(&found).len(), 1);
        assert!(matches!(found.last(), Some(Found::Malformed(_))));
    }
}
