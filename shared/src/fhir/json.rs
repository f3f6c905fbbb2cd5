//! The JSON of the resources filed per reading, written without serde's machinery: the same
//! bytes as `serde_json::to_writer` gives for the derived `Serialize` (a debug assertion on every
//! Observation stored holds them equal, and so does every test that files one).
//!
//! Why: serde_json checks every byte of every key and string for characters to escape, one byte
//! at a time, and reaches each field through a generic call chain; on the per-reading path that
//! was a third of the time (docs/benchmarks.md). Here keys are the writer's own literals, a
//! string is checked for the three kinds of byte JSON escapes in one pass the compiler
//! vectorizes, and a string that has one is handed to serde_json to escape, so escaping stays
//! serde_json's. Every type is taken apart field by field without `..`, so a field added to a
//! type does not compile until it is written here.

use std::ops::Range;

use super::{CodeableConcept, Coding, Decimal, Identifier, Meta, Observation, ObservationComponent, Quantity, Reference};

/// A JSON object being written: its members, comma-separated, in the order they are given.
struct Object<'o> {
    out: &'o mut String,
    empty: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    /// Starts a member; `key` is one of the writer's literals, which need no escaping.
    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    fn string(&mut self, key: &str, value: &str) -> Result<(), serde_json::Error> {
        string(self.key(key), value)
    }

    fn optional_string(&mut self, key: &str, value: Option<&str>) -> Result<(), serde_json::Error> {
        value.map_or(Ok(()), |v| self.string(key, v))
    }

    /// A member written by `write`, if there is a value (serde's `skip_serializing_if = "Option::is_none"`).
    fn optional<T>(&mut self, key: &str, value: Option<&T>, write: fn(&mut String, &T) -> Result<(), serde_json::Error>) -> Result<(), serde_json::Error> {
        value.map_or(Ok(()), |v| write(self.key(key), v))
    }

    /// An array member, left out when empty (serde's `skip_serializing_if = "Vec::is_empty"`).
    fn array<T>(&mut self, key: &str, items: &[T], write: fn(&mut String, &T) -> Result<(), serde_json::Error>) -> Result<(), serde_json::Error> {
        if items.is_empty() {
            return Ok(());
        }
        let out = self.key(key);
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write(out, item)?;
        }
        out.push(']');
        Ok(())
    }

    fn close(self) {
        self.out.push('}');
    }

    /// Where the next member will start (after its comma).
    fn next_member_at(&self) -> usize {
        self.out.len() + usize::from(!self.empty)
    }

    /// Where the members so far end.
    fn end(&self) -> usize {
        self.out.len()
    }
}

/// Where the members of an Observation's JSON that its fingerprint covers were written, each a
/// run of whole members without the commas around it: what was measured (`code` to `device`),
/// `effectiveDateTime`, and everything after `issued` (empty if nothing is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMembers {
    pub measured: Range<usize>,
    pub effective: Range<usize>,
    pub after_issued: Range<usize>,
}

/// Whether JSON must escape a byte of `s`: a control character, `"` or `\` (serde_json escapes
/// exactly these). Folded over every byte without stopping early, so that the compiler can
/// vectorize it. (Checking eight bytes at a time in a machine word was tried: no faster for
/// strings this short.)
fn needs_escape(s: &str) -> bool {
    s.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// A JSON string: copied between quotes, or escaped by serde_json when it has to be.
fn string(out: &mut String, s: &str) -> Result<(), serde_json::Error> {
    if needs_escape(s) {
        out.push_str(&serde_json::to_string(s)?);
        return Ok(());
    }
    out.reserve(s.len() + 2);
    out.push('"');
    out.push_str(s);
    out.push('"');
    Ok(())
}

fn text(out: &mut String, s: &super::Text) -> Result<(), serde_json::Error> {
    string(out, s)
}

/// A decimal's text is already a JSON number (it passed FHIR's decimal grammar): written as it is.
fn decimal(out: &mut String, d: &Decimal) {
    out.push_str(d.as_str());
}

fn coding(out: &mut String, c: &Coding) -> Result<(), serde_json::Error> {
    let Coding { system, code, display } = c;
    let mut o = Object::open(out);
    o.optional_string("system", system.as_deref())?;
    o.optional_string("code", code.as_deref())?;
    o.optional_string("display", display.as_deref())?;
    o.close();
    Ok(())
}

fn codeable_concept(out: &mut String, c: &CodeableConcept) -> Result<(), serde_json::Error> {
    let CodeableConcept { coding: codings, text } = c;
    let mut o = Object::open(out);
    o.array("coding", codings, coding)?;
    o.optional_string("text", text.as_deref())?;
    o.close();
    Ok(())
}

fn reference(out: &mut String, r: &Reference) -> Result<(), serde_json::Error> {
    let Reference { reference } = r;
    let mut o = Object::open(out);
    o.string("reference", reference)?;
    o.close();
    Ok(())
}

fn quantity(out: &mut String, q: &Quantity) -> Result<(), serde_json::Error> {
    let Quantity { value, unit, system, code } = q;
    let mut o = Object::open(out);
    decimal(o.key("value"), value);
    o.string("unit", unit)?;
    o.optional_string("system", system.as_deref())?;
    o.optional_string("code", code.as_deref())?;
    o.close();
    Ok(())
}

fn identifier(out: &mut String, i: &Identifier) -> Result<(), serde_json::Error> {
    let Identifier { system, value } = i;
    let mut o = Object::open(out);
    o.string("system", system)?;
    o.string("value", value)?;
    o.close();
    Ok(())
}

fn meta(out: &mut String, m: &Meta) -> Result<(), serde_json::Error> {
    let Meta { profile, tag } = m;
    let mut o = Object::open(out);
    o.array("profile", profile, text)?;
    o.array("tag", tag, coding)?;
    o.close();
    Ok(())
}

fn component(out: &mut String, c: &ObservationComponent) -> Result<(), serde_json::Error> {
    let ObservationComponent { code, value_quantity, value_codeable_concept, data_absent_reason } = c;
    let mut o = Object::open(out);
    codeable_concept(o.key("code"), code)?;
    o.optional("valueQuantity", value_quantity.as_ref(), quantity)?;
    o.optional("valueCodeableConcept", value_codeable_concept.as_ref(), codeable_concept)?;
    o.optional("dataAbsentReason", data_absent_reason.as_ref(), codeable_concept)?;
    o.close();
    Ok(())
}

/// An Observation's JSON, appended to `out`; and where in `out` the members its fingerprint covers are.
pub fn observation(out: &mut String, obs: &Observation) -> Result<RecordedMembers, serde_json::Error> {
    let Observation {
        resource_type,
        id,
        meta: meta_,
        identifier: identifiers,
        status,
        category,
        code,
        subject,
        device,
        effective_date_time,
        issued,
        performer,
        value_quantity,
        value_codeable_concept,
        value_string,
        interpretation,
        component: components,
        has_member,
        derived_from,
    } = obs;
    let mut o = Object::open(out);
    o.string("resourceType", resource_type)?;
    o.string("id", id)?;
    o.optional("meta", meta_.as_ref(), meta)?;
    o.array("identifier", identifiers, identifier)?;
    o.string("status", status)?;
    o.array("category", category, codeable_concept)?;
    let measured_at = o.next_member_at();
    codeable_concept(o.key("code"), code)?;
    reference(o.key("subject"), subject)?;
    o.optional("device", device.as_ref(), reference)?;
    let measured = measured_at..o.end();
    let effective_at = o.next_member_at();
    o.string("effectiveDateTime", effective_date_time)?;
    let effective = effective_at..o.end();
    o.string("issued", issued)?;
    let after_issued_at = o.next_member_at();
    o.array("performer", performer, reference)?;
    o.optional("valueQuantity", value_quantity.as_ref(), quantity)?;
    o.optional("valueCodeableConcept", value_codeable_concept.as_ref(), codeable_concept)?;
    o.optional_string("valueString", value_string.as_deref())?;
    o.array("interpretation", interpretation, codeable_concept)?;
    o.array("component", components, component)?;
    o.array("hasMember", has_member, reference)?;
    o.array("derivedFrom", derived_from, reference)?;
    // Nothing after `issued`: the next member would have started past the end.
    let after_issued = after_issued_at.min(o.end())..o.end();
    o.close();
    Ok(RecordedMembers { measured, effective, after_issued })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use crate::fhir::Text;

    /// Strings with every kind of byte JSON escapes, and some it does not.
    const AWKWARD: [&str; 8] = ["", "plain", "quote \" inside", "back\\slash", "tab\tnew\nline\r", "\u{1}\u{1f}bell\u{7}", "del \u{7f} é ✓ 𝄞", "end\\"];

    fn awkward(i: usize) -> String {
        AWKWARD[i % AWKWARD.len()].to_owned()
    }

    fn coding_of(i: usize) -> Coding {
        Coding { system: Some(awkward(i).into()), code: (i % 3 != 0).then(|| Text::from(awkward(i + 1))), display: (i % 2 == 0).then(|| awkward(i + 2).into()) }
    }

    fn concept(i: usize, codings: usize) -> CodeableConcept {
        CodeableConcept { coding: (0..codings).map(|k| coding_of(i + k)).collect::<Vec<_>>().into(), text: (i % 2 == 1).then(|| awkward(i + 3).into()) }
    }

    fn quantity_of(i: usize) -> Quantity {
        Quantity { value: Decimal::parse(["98.60", "-0.5", "1e3", "120"][i % 4]).unwrap(), unit: awkward(i), system: (i % 2 == 0).then(|| awkward(i + 1).into()), code: (i % 3 == 0).then(|| awkward(i + 2).into()) }
    }

    /// An Observation with every member present or absent by `i`'s bits, and awkward text.
    fn observation_of(i: usize) -> Observation {
        let on = |bit: usize| i & (1 << bit) != 0;
        let refs = |n: usize| (0..n).map(|k| Reference { reference: awkward(i + k) }).collect::<Vec<_>>();
        Observation {
            resource_type: "Observation".into(),
            id: awkward(i),
            meta: on(0).then(|| Meta { profile: (0..i % 3).map(|k| Text::from(awkward(i + k))).collect(), tag: (0..i % 2).map(coding_of).collect() }),
            identifier: if on(1) { vec![Identifier { system: awkward(i).into(), value: awkward(i + 1) }] } else { Vec::new() },
            status: "final".into(),
            category: if on(2) { vec![concept(i, 1), concept(i + 1, 0)].into() } else { Cow::Borrowed(&[]) },
            code: concept(i, i % 3),
            subject: Reference { reference: awkward(i + 5) },
            device: on(3).then(|| Reference { reference: awkward(i + 6) }),
            effective_date_time: awkward(i + 7),
            issued: awkward(i),
            performer: if on(4) { refs(2) } else { Vec::new() },
            value_quantity: on(5).then(|| quantity_of(i)),
            value_codeable_concept: on(6).then(|| concept(i + 2, 2)),
            value_string: on(7).then(|| awkward(i + 4)),
            interpretation: if on(8) { vec![concept(i, 1)] } else { Vec::new() },
            component: if on(9) {
                vec![
                    ObservationComponent::quantity(concept(i, 1), quantity_of(i + 1)),
                    ObservationComponent { code: concept(i + 1, 2), value_quantity: None, value_codeable_concept: Some(concept(i, 1)), data_absent_reason: Some(concept(i + 3, 1)) },
                ]
            } else {
                Vec::new()
            },
            has_member: if on(10) { refs(3) } else { Vec::new() },
            derived_from: if on(11) { refs(1) } else { Vec::new() },
        }
    }

    #[test]
    fn observations_are_written_as_serde_json_writes_them() {
        for i in 0..4096 {
            let obs = observation_of(i);
            let mut json = String::new();
            let members = observation(&mut json, &obs).unwrap();
            assert_eq!(json, serde_json::to_string(&obs).unwrap(), "observation {i}");

            // The members a fingerprint covers: `code` up to `device`, then the effective time,
            // then `issued`, then the rest up to the closing brace.
            let member = |key: &str, value: &str| format!("\"{key}\":{}", serde_json::to_string(value).unwrap());
            assert!(json[members.measured.clone()].starts_with("\"code\":{"), "observation {i}");
            assert_eq!(&json[members.measured.end..members.effective.start], ",", "observation {i}");
            assert_eq!(json[members.effective.clone()], member("effectiveDateTime", &obs.effective_date_time), "observation {i}");
            let issued = format!(",{}", member("issued", &obs.issued));
            let after = &json[members.effective.end..];
            assert!(after.starts_with(&issued), "observation {i}");
            let rest = &after[issued.len()..after.len() - 1];
            assert_eq!(&json[members.after_issued.clone()], rest.strip_prefix(',').unwrap_or(rest), "observation {i}");
            assert_eq!(rest.is_empty(), members.after_issued.is_empty(), "observation {i}");
        }
    }

    #[test]
    fn only_control_characters_quotes_and_backslashes_need_escaping() {
        // Every ASCII byte at every place in a word and in the bytes after the last whole word,
        // among neighbours that need no escaping (just above and below the limits, UTF-8) and
        // that do (to see the check is not fooled by a borrow from a neighbour).
        let neighbours = ["x", " ", "!", "#", "[", "]", "\u{7f}", "é", "\u{1f}"];
        for b in 0u8..=0x7f {
            let c = (b as char).to_string();
            let escaped = serde_json::to_string(&c).unwrap() != format!("\"{c}\"");
            for len in 1..=20 {
                for at in 0..len {
                    for n in neighbours {
                        let s: String = (0..len).map(|i| if i == at { c.as_str() } else { n }).collect();
                        let expected = escaped || (n == "\u{1f}" && len > 1);
                        assert_eq!(needs_escape(&s), expected, "byte {b:#04x} at {at} of {len}, among {n:?}");
                    }
                }
            }
        }
        assert!(!needs_escape("é ✓ 𝄞 http://loinc.org 8867-4 Patient/patient-123"), "UTF-8 is written as it is");
    }
}
