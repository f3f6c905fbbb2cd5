//! The Observation search: its parameters, the indexes that serve them, and pages merged across
//! them.
//!
//! | parameters | index (key condition) | filtered after the key condition |
//! |---|---|---|
//! | `patient` + `code` of `system\|code` values | `byPatientCode`, one query per code, merged by date | `device`, `category`, `_lastUpdated` |
//! | `patient` (any other `code` form, or none) | `byPatient` | `code`, `device`, `category`, `_lastUpdated` |
//! | `device` without `patient` | `byDevice` | `code`, `category`, `_lastUpdated`, and the caller's patients |
//!
//! `date` is always part of the key condition (`effectiveAt` between its bounds).

use std::collections::VecDeque;

use super::{effective_bounds, DateCondition, FhirError, StreamState, Token, DEFAULT_COUNT, MAX_ALTERNATIVES, MAX_COUNT};
use crate::fhir::vitals::VitalSign;
use crate::fhir::CodeableConcept;
use crate::observations::{Along, ObservationStore, Position, SearchPage, StoredObservation};
use crate::StoreError;

/// The most Observations one request looks at (filters may refuse many): a page stops there,
/// shorter, with its `next` link.
pub const MAX_EXAMINED: usize = 2000;

/// A search of Observations, as its parameters ask.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationSearch {
    pub patient: Option<String>,
    pub device: Option<String>,
    /// Alternatives (a comma in `code`).
    pub codes: Vec<Token>,
    pub categories: Vec<Token>,
    /// Each must hold (repeated `date`).
    pub dates: Vec<DateCondition>,
    pub last_updated: Vec<DateCondition>,
    pub count: usize,
    pub newest_first: bool,
    /// `_summary=count` (or `_count=0`): the total only.
    pub summary_count: bool,
    /// `_total=accurate` (or fhirpy's `_totalMethod=count`): the total on every page.
    pub total_wanted: bool,
    pub cursor: Option<String>,
    /// A digest of what chooses the results (not `_count`, `_cursor`, `_format`), which a
    /// cursor must carry.
    pub digest: String,
}

const PARAMETERS: &str = "patient, subject, code, category, date, device, _lastUpdated, _count, _sort, _summary, _total, _cursor, _format";

impl ObservationSearch {
    /// Reads the query's parameters in order; refuses any unknown, repeated or malformed one.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, FhirError> {
        let mut search = ObservationSearch {
            patient: None,
            device: None,
            codes: Vec::new(),
            categories: Vec::new(),
            dates: Vec::new(),
            last_updated: Vec::new(),
            count: DEFAULT_COUNT,
            newest_first: true,
            summary_count: false,
            total_wanted: false,
            cursor: None,
            digest: String::new(),
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut chosen: Vec<(&str, String)> = Vec::new();
        for (name, value) in pairs {
            let name = name.as_str();
            if let Some((base, modifier)) = name.split_once(':') {
                return Err(FhirError::bad(base, format!("the modifier :{modifier} is not supported")));
            }
            if value.is_empty() {
                return Err(FhirError::bad(name, "has no value"));
            }
            // Parameters that may appear once (`subject` is `patient` by another name).
            let once = match name {
                "subject" => Some("patient"),
                "patient" | "device" | "code" | "category" | "_count" | "_sort" | "_summary" | "_total" | "_totalMethod" | "_cursor" | "_format" => Some(name),
                _ => None,
            };
            if let Some(key) = once {
                if seen.contains(&key) {
                    let hint = if matches!(key, "code" | "category") { "; a comma separates alternatives" } else { "" };
                    return Err(FhirError::bad(name, format!("is given more than once{hint}")));
                }
                seen.push(key);
            }
            match name {
                "patient" | "subject" => search.patient = Some(reference(name, value, "Patient")?),
                "device" => search.device = Some(reference(name, value, "Device")?),
                "code" => search.codes = tokens(name, value)?,
                "category" => search.categories = tokens(name, value)?,
                "date" | "_lastUpdated" => {
                    if value.contains(',') {
                        return Err(FhirError::bad(name, "alternatives (a comma) are not supported; repeat the parameter for a range"));
                    }
                    let condition = DateCondition::parse(name, value)?;
                    if name == "date" { &mut search.dates } else { &mut search.last_updated }.push(condition);
                }
                "_count" => {
                    let count: usize = value
                        .parse()
                        .ok()
                        .filter(|c| *c <= MAX_COUNT)
                        .ok_or_else(|| FhirError::bad(name, format!("must be a whole number from 0 to {MAX_COUNT}")))?;
                    // FHIR: `_count=0` asks for the total alone.
                    match count {
                        0 => search.summary_count = true,
                        n => search.count = n,
                    }
                }
                "_total" => {
                    search.total_wanted = match value.as_str() {
                        "accurate" | "estimate" => true,
                        "none" => false,
                        _ => return Err(FhirError::bad(name, "must be none, estimate or accurate")),
                    }
                }
                // What fhirpy's `count()` sends (an Aidbox parameter) with `_count=0`.
                "_totalMethod" => {
                    if value != "count" {
                        return Err(FhirError::bad(name, "only count is supported"));
                    }
                    search.total_wanted = true;
                }
                "_sort" => {
                    search.newest_first = match value.as_str() {
                        "-date" => true,
                        "date" => false,
                        _ => return Err(FhirError::bad(name, "only date and -date are supported")),
                    }
                }
                "_summary" => {
                    search.summary_count = match value.as_str() {
                        "count" => true,
                        "false" => false,
                        _ => return Err(FhirError::bad(name, "only count and false are supported")),
                    }
                }
                "_cursor" => search.cursor = Some(value.clone()),
                "_format" => {
                    if !matches!(value.as_str(), "json" | "application/json" | "application/fhir+json") {
                        return Err(FhirError::bad(name, "only JSON is served"));
                    }
                }
                _ => return Err(FhirError::bad(name, format!("is not a supported parameter (supported: {PARAMETERS})"))),
            }
            // References as read (`Patient/p-1` is `p-1`), so either form continues a search.
            let normalized = match name {
                "patient" | "subject" => search.patient.as_deref(),
                "device" => search.device.as_deref(),
                _ => Some(value.as_str()),
            };
            if !matches!(name, "_count" | "_cursor" | "_format") {
                chosen.push((if name == "subject" { "patient" } else { name }, normalized.unwrap_or_default().to_owned()));
            }
        }
        chosen.sort();
        let canonical: Vec<String> = chosen.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.join("&").as_bytes());
        search.digest = hex::encode(&digest.as_ref()[..8]);
        Ok(search)
    }
}

/// `Type/id` or `id` of a reference parameter.
fn reference(parameter: &str, value: &str, resource_type: &str) -> Result<String, FhirError> {
    let id = match value.split_once('/') {
        Some((t, id)) if t == resource_type => id,
        Some(_) => return Err(FhirError::bad(parameter, format!("must be {resource_type}/<id> or <id>"))),
        None => value,
    };
    let valid = match resource_type {
        "Patient" => crate::fhir::is_valid_id(id),
        // Thing names may hold `:` and `_`, which FHIR ids do not.
        _ => !id.is_empty() && id.len() <= 128 && !id.contains(['/', ',']),
    };
    if !valid {
        return Err(FhirError::bad(parameter, format!("{id:?} is not a {resource_type} id")));
    }
    Ok(id.to_owned())
}

fn tokens(parameter: &str, value: &str) -> Result<Vec<Token>, FhirError> {
    let tokens: Vec<Token> = value.split(',').map(|t| Token::parse(parameter, t)).collect::<Result<_, _>>()?;
    if tokens.len() > MAX_ALTERNATIVES {
        return Err(FhirError::bad(parameter, format!("at most {MAX_ALTERNATIVES} alternatives")));
    }
    Ok(tokens)
}

/// `Observation/$lastn`: the latest `max` Observations of each code for one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct LastN {
    pub patient: Option<String>,
    /// `system|code` keys, in the order asked (each keys `byPatientCode`).
    pub code_keys: Vec<String>,
    pub categories: Vec<Token>,
    pub max: usize,
}

/// The most Observations of one code `$lastn` answers.
pub const MAX_LASTN: usize = 100;

impl LastN {
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, FhirError> {
        let mut lastn = LastN { patient: None, code_keys: Vec::new(), categories: Vec::new(), max: 1 };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            let name = name.as_str();
            if value.is_empty() {
                return Err(FhirError::bad(name, "has no value"));
            }
            let key = if name == "subject" { "patient" } else { name };
            if seen.contains(&key) {
                return Err(FhirError::bad(name, "is given more than once"));
            }
            seen.push(key);
            match name {
                "patient" | "subject" => lastn.patient = Some(reference(name, value, "Patient")?),
                "code" => {
                    lastn.code_keys = tokens(name, value)?
                        .iter()
                        .map(|t| t.code_key().ok_or_else(|| FhirError::bad(name, "$lastn needs each code as system|code")))
                        .collect::<Result<_, _>>()?;
                    lastn.code_keys.dedup();
                }
                "category" => lastn.categories = tokens(name, value)?,
                "max" => {
                    lastn.max = value
                        .parse()
                        .ok()
                        .filter(|m| (1..=MAX_LASTN).contains(m))
                        .ok_or_else(|| FhirError::bad(name, format!("must be a whole number from 1 to {MAX_LASTN}")))?
                }
                "_format" if matches!(value.as_str(), "json" | "application/json" | "application/fhir+json") => {}
                _ => return Err(FhirError::bad(name, "is not a parameter of $lastn (patient, subject, code, category, max)")),
            }
        }
        if lastn.code_keys.is_empty() {
            // Every code the platform files of its own (vital signs, glucose); others by name.
            lastn.code_keys = VitalSign::ALL.iter().filter(|v| **v != VitalSign::VitalSignsPanel).map(|v| v.code_key()).collect();
        }
        Ok(lastn)
    }
}

/// The latest Observations of each code: one query of `byPatientCode` per code, newest first.
pub async fn lastn<O: ObservationStore>(store: &O, patient: &str, ask: &LastN) -> Result<Vec<StoredObservation>, StoreError> {
    let filter = Plan { streams: Vec::new(), codes: Vec::new(), device: None, categories: ask.categories.clone(), last_updated: Vec::new(), from: None, to: None };
    let mut found = Vec::new();
    for code_key in &ask.code_keys {
        let along = Along::PatientCode { patient: patient.to_owned(), code_key: code_key.clone() };
        let page = SearchPage { along: &along, from: None, to: None, newest_first: true, after: None, limit: ask.max };
        found.extend(store.search_page(&page).await?.0.into_iter().filter(|o| filter.admits(o)));
    }
    Ok(found)
}

/// The indexes a search runs along and what is checked of each Observation found there.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub streams: Vec<Along>,
    /// Codes to match when no index key holds them (empty: any).
    codes: Vec<Token>,
    device: Option<String>,
    categories: Vec<Token>,
    last_updated: Vec<DateCondition>,
    /// Inclusive bounds on the effective time, part of every key condition.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Chooses the indexes (see the module's table).
pub fn plan(search: &ObservationSearch) -> Result<Plan, FhirError> {
    let (from, to) = effective_bounds(&search.dates);
    let mut plan = Plan {
        streams: Vec::new(),
        codes: Vec::new(),
        device: None,
        categories: search.categories.clone(),
        last_updated: search.last_updated.clone(),
        from,
        to,
    };
    match (&search.patient, &search.device) {
        (Some(patient), device) => {
            let keys: Option<Vec<String>> = search.codes.iter().map(Token::code_key).collect();
            match keys {
                Some(mut keys) if !keys.is_empty() => {
                    keys.dedup();
                    plan.streams = keys.into_iter().map(|code_key| Along::PatientCode { patient: patient.clone(), code_key }).collect();
                }
                _ => {
                    plan.streams = vec![Along::Patient(patient.clone())];
                    plan.codes = search.codes.clone();
                }
            }
            plan.device = device.clone();
        }
        (None, Some(device)) => {
            plan.streams = vec![Along::Device(device.clone())];
            plan.codes = search.codes.clone();
        }
        (None, None) => return Err(FhirError::bad("patient", "a search of Observations needs patient (or subject) or device")),
    }
    Ok(plan)
}

/// What is read of a stored resource to filter it.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    category: Vec<CodeableConcept>,
    issued: Option<String>,
}

impl Plan {
    /// Whether the key conditions alone decide the results.
    pub fn filters_nothing(&self) -> bool {
        self.codes.is_empty() && self.device.is_none() && self.categories.is_empty() && self.last_updated.is_empty()
    }

    /// Whether an Observation the key conditions found matches the rest of the search.
    pub fn admits(&self, o: &StoredObservation) -> bool {
        if !self.codes.is_empty() && !self.codes.iter().any(|t| t.matches_key(&o.code_key)) {
            return false;
        }
        if self.device.as_ref().is_some_and(|d| *d != o.device_id) {
            return false;
        }
        if self.categories.is_empty() && self.last_updated.is_empty() {
            return true;
        }
        let Ok(probe) = serde_json::from_str::<Probe>(&o.resource) else { return false };
        let in_category = self.categories.is_empty()
            || probe.category.iter().flat_map(|c| c.coding.iter()).any(|c| self.categories.iter().any(|t| t.matches(c.system.as_deref(), c.code.as_deref())));
        let issued = probe.issued.as_deref().and_then(crate::platform::time::parse_with_offset);
        let updated = self.last_updated.is_empty() || issued.is_some_and(|at| self.last_updated.iter().all(|c| c.admits(at)));
        in_category && updated
    }
}

/// One page of a search: the Observations, and where each index stopped when there may be more.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub found: Vec<StoredObservation>,
    pub next: Option<Vec<StreamState>>,
}

/// An index being read: what was fetched and not yet taken, and whether it holds more.
struct Stream<'a> {
    along: &'a Along,
    after: Option<Position>,
    buffer: VecDeque<StoredObservation>,
    more: bool,
}

/// The next `count` Observations of the search after `states`, merged across its indexes in
/// date order (ties by id).
pub async fn page<O: ObservationStore>(store: &O, plan: &Plan, states: &[StreamState], newest_first: bool, count: usize) -> Result<Page, StoreError> {
    let mut streams: Vec<Stream<'_>> = plan
        .streams
        .iter()
        .zip(states)
        .map(|(along, state)| match state {
            StreamState::Start => Stream { along, after: None, buffer: VecDeque::new(), more: true },
            StreamState::After(p) => Stream { along, after: Some(p.clone()), buffer: VecDeque::new(), more: true },
            StreamState::Done => Stream { along, after: None, buffer: VecDeque::new(), more: false },
        })
        .collect();
    let fetch = (count + 1).min(MAX_COUNT + 1);
    let mut found = Vec::new();
    let mut examined = 0;
    while found.len() < count && examined < MAX_EXAMINED {
        for stream in streams.iter_mut().filter(|s| s.buffer.is_empty() && s.more) {
            let request = SearchPage {
                along: stream.along,
                from: plan.from.as_deref(),
                to: plan.to.as_deref(),
                newest_first,
                after: stream.after.as_ref(),
                limit: fetch,
            };
            let (items, more) = store.search_page(&request).await?;
            stream.more = more && !items.is_empty();
            stream.buffer.extend(items);
        }
        let head = |s: &Stream<'_>| s.buffer.front().map(Position::of);
        let mut best: Option<(usize, Position)> = None;
        for (i, position) in streams.iter().enumerate().filter_map(|(i, s)| head(s).map(|p| (i, p))) {
            let better = best.as_ref().is_none_or(|(_, b)| if newest_first { position > *b } else { position < *b });
            if better {
                best = Some((i, position));
            }
        }
        let Some((i, position)) = best else { break };
        let stream = &mut streams[i];
        let Some(o) = stream.buffer.pop_front() else { break };
        stream.after = Some(position);
        examined += 1;
        if plan.admits(&o) {
            found.push(o);
        }
    }
    let unfinished = streams.iter().any(|s| !s.buffer.is_empty() || s.more);
    let next = unfinished.then(|| {
        streams
            .iter()
            .map(|s| match (&s.after, s.buffer.is_empty() && !s.more) {
                (_, true) => StreamState::Done,
                (Some(p), false) => StreamState::After(p.clone()),
                (None, false) => StreamState::Start,
            })
            .collect()
    });
    Ok(Page { found, next })
}

/// How many Observations the search finds: counted by the key conditions alone when they decide
/// it, else by reading them.
pub async fn count<O: ObservationStore>(store: &O, plan: &Plan) -> Result<usize, StoreError> {
    if plan.filters_nothing() {
        let mut total = 0;
        for along in &plan.streams {
            total += store.count(along, plan.from.as_deref(), plan.to.as_deref()).await?;
        }
        return Ok(total);
    }
    let mut states = vec![StreamState::Start; plan.streams.len()];
    let mut total = 0;
    loop {
        let found = page(store, plan, &states, true, MAX_COUNT).await?;
        total += found.found.len();
        match found.next {
            Some(next) => states = next,
            None => return Ok(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observations::memory::MemoryObservations;

    fn pairs(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    fn search(query: &str) -> Result<ObservationSearch, FhirError> {
        ObservationSearch::parse(&pairs(query))
    }

    fn refused(query: &str) -> (String, String) {
        match search(query).and_then(|s| plan(&s).map(|_| s)) {
            Err(FhirError::BadParameter { parameter, message }) => (parameter, message),
            other => panic!("{query}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn every_parameter_is_read_or_refused_by_name() {
        let s = search("subject=Patient/p-1&code=http://loinc.org|8867-4,http://loinc.org|9279-1&date=ge2026-11-01&date=lt2026-12&_count=20&_sort=date&category=vital-signs&device=Device/acme:1_a").unwrap();
        assert_eq!(s.patient.as_deref(), Some("p-1"));
        assert_eq!(s.device.as_deref(), Some("acme:1_a"), "thing names are device ids");
        assert_eq!(s.codes.len(), 2);
        assert_eq!(s.dates.len(), 2);
        assert_eq!((s.count, s.newest_first, s.summary_count), (20, false, false));
        assert_eq!(search("patient=p-1").unwrap().count, DEFAULT_COUNT);
        assert!(search("patient=p-1").unwrap().newest_first, "newest first unless asked");
        assert!(search("patient=p-1&_count=0").unwrap().summary_count, "FHIR's total alone");
        assert!(search("patient=p-1&_count=0&_totalMethod=count").unwrap().total_wanted, "as fhirpy counts");
        assert!(search("patient=p-1&_total=accurate").unwrap().total_wanted);
        for (query, parameter, says) in [
            ("patient=p-1&color=red", "color", "is not a supported parameter"),
            ("patient=p-1&code:text=pulse", "code", "modifier :text"),
            ("patient=p-1&patient=p-2", "patient", "more than once"),
            ("patient=p-1&subject=p-2", "subject", "more than once"),
            ("patient=p-1&code=a&code=b", "code", "a comma separates alternatives"),
            ("patient=Group/g-1", "patient", "Patient/<id>"),
            ("patient=has space", "patient", "not a Patient id"),
            ("patient=p-1&date=2026-13", "date", "not a FHIR date"),
            ("patient=p-1&date=ge2026,le2027", "date", "repeat the parameter"),
            ("patient=p-1&_count=-1", "_count", "0 to 200"),
            ("patient=p-1&_count=201", "_count", "0 to 200"),
            ("patient=p-1&_total=exact", "_total", "none, estimate or accurate"),
            ("patient=p-1&_totalMethod=guess", "_totalMethod", "only count"),
            ("patient=p-1&_sort=code", "_sort", "date and -date"),
            ("patient=p-1&_summary=true", "_summary", "count and false"),
            ("patient=p-1&_format=xml", "_format", "JSON"),
            ("patient=p-1&code=", "code", "no value"),
            ("code=http://loinc.org|8867-4", "patient", "needs patient (or subject) or device"),
            ("patient=p-1&code=a,b,c,d,e,f,g,h,i,j,k", "code", "at most 10"),
        ] {
            let (named, message) = refused(query);
            assert_eq!(named, parameter, "{query}");
            assert!(message.contains(says), "{query}: {message}");
        }
    }

    #[test]
    fn a_cursor_is_bound_to_what_chooses_the_results_not_to_the_page_size() {
        let digest = |q: &str| search(q).unwrap().digest;
        assert_eq!(digest("patient=p-1&code=a&_count=5"), digest("code=a&subject=Patient/p-1&_count=50&_cursor=x"));
        assert_ne!(digest("patient=p-1&code=a"), digest("patient=p-1&code=b"));
        assert_ne!(digest("patient=p-1"), digest("patient=p-2"));
        assert_ne!(digest("patient=p-1"), digest("patient=p-1&_sort=date"));
    }

    #[test]
    fn each_search_runs_on_the_index_made_for_it() {
        let streams = |q: &str| plan(&search(q).unwrap()).unwrap().streams;
        let code = |c: &str| Along::PatientCode { patient: "p-1".into(), code_key: c.into() };
        assert_eq!(streams("patient=p-1&code=http://loinc.org|8867-4"), [code("http://loinc.org|8867-4")]);
        assert_eq!(streams("patient=p-1&code=http://loinc.org|8867-4,http://loinc.org|9279-1"), [code("http://loinc.org|8867-4"), code("http://loinc.org|9279-1")]);
        assert_eq!(streams("patient=p-1&code=|local-1"), [code("|local-1")], "a code without a system is keyed so");
        assert_eq!(streams("patient=p-1&code=8867-4"), [Along::Patient("p-1".into())], "any system: filtered");
        assert_eq!(streams("patient=p-1&code=http://loinc.org|8867-4,8310-5"), [Along::Patient("p-1".into())]);
        assert_eq!(streams("patient=p-1&device=d-1"), [Along::Patient("p-1".into())]);
        assert_eq!(streams("device=d-1&code=8867-4"), [Along::Device("d-1".into())]);
        let p = plan(&search("patient=p-1&date=ge2026-11-22&date=lt2026-11-23").unwrap()).unwrap();
        assert_eq!((p.from.as_deref(), p.to.as_deref()), (Some("2026-11-22T00:00:00.000Z"), Some("2026-11-22T23:59:59.999Z")));
    }

    #[tokio::test]
    async fn lastn_answers_the_latest_of_each_code() {
        let store = store(10).await;
        let ask = |q: &str| LastN::parse(&pairs(q)).unwrap();
        let ids = |found: Vec<StoredObservation>| found.into_iter().map(|o| o.id).collect::<Vec<_>>();
        assert_eq!(ids(lastn(&store, "p-1", &ask("patient=p-1")).await.unwrap()), ["8867-4-09", "2339-0-09"], "each code the platform files, heart rate and glucose here");
        assert_eq!(ids(lastn(&store, "p-1", &ask("patient=p-1&code=http://loinc.org|2339-0,http://loinc.org|8867-4&max=2")).await.unwrap()), ["2339-0-09", "2339-0-08", "8867-4-09", "8867-4-08"]);
        assert_eq!(ids(lastn(&store, "p-1", &ask("patient=p-1&code=http://loinc.org|2339-0,http://loinc.org|8867-4&category=laboratory")).await.unwrap()), ["2339-0-09"]);
        for (query, parameter) in [("patient=p-1&code=8867-4", "code"), ("patient=p-1&max=0", "max"), ("patient=p-1&date=2026", "date"), ("patient=p-1&max=1&max=2", "max")] {
            assert!(matches!(LastN::parse(&pairs(query)), Err(FhirError::BadParameter { parameter: p, .. }) if p == parameter), "{query}");
        }
    }

    /// `n` readings of each code for p-1 from device d-1 (d-2 for odd minutes of heart rate),
    /// a minute apart from 10:00, and one of p-2's.
    async fn store(n: usize) -> MemoryObservations {
        let store = MemoryObservations::default();
        let mut set = Vec::new();
        for i in 0..n {
            for (code, category) in [("8867-4", "vital-signs"), ("2339-0", "laboratory")] {
                let at = format!("2026-11-22T10:{:02}:00.000Z", i);
                set.push(StoredObservation {
                    id: format!("{code}-{i:02}"),
                    patient_id: "p-1".into(),
                    device_id: if code == "8867-4" && i % 2 == 1 { "d-2".into() } else { "d-1".into() },
                    code_key: format!("http://loinc.org|{code}"),
                    effective_at: at.clone(),
                    content_hash: "2t:00".into(),
                    resource: format!(
                        r#"{{"resourceType":"Observation","id":"{code}-{i:02}","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"{category}"}}]}}],"issued":"2026-11-2{}T00:00:00.000Z"}}"#,
                        if i < n / 2 { 2 } else { 3 }
                    ),
                });
            }
        }
        set.push(StoredObservation { id: "other".into(), patient_id: "p-2".into(), device_id: "d-1".into(), code_key: "http://loinc.org|8867-4".into(), effective_at: "2026-11-22T10:00:30.000Z".into(), content_hash: "2t:00".into(), resource: "{}".into() });
        for o in set {
            store.insert_set(&[o]).await.unwrap();
        }
        store
    }

    /// Every page of a search, followed to its end: the ids of each page.
    async fn all_pages(store: &MemoryObservations, query: &str) -> Vec<Vec<String>> {
        let s = search(query).unwrap();
        let p = plan(&s).unwrap();
        let mut states = vec![StreamState::Start; p.streams.len()];
        let mut pages = Vec::new();
        loop {
            let found = page(store, &p, &states, s.newest_first, s.count).await.unwrap();
            pages.push(found.found.iter().map(|o| o.id.clone()).collect());
            match found.next {
                Some(next) => states = next,
                None => return pages,
            }
            assert!(pages.len() < 100, "paging ends");
        }
    }

    #[tokio::test]
    async fn pages_follow_each_other_without_gaps_or_repeats_across_merged_codes() {
        let store = store(10).await;
        let pages = all_pages(&store, "patient=p-1&code=http://loinc.org|8867-4,http://loinc.org|2339-0&_count=3").await;
        let ids: Vec<String> = pages.concat();
        assert_eq!(ids.len(), 20, "{pages:?}");
        assert_eq!(pages.len(), 7, "6 full pages and the last two: {pages:?}");
        assert_eq!(&ids[..4], ["8867-4-09", "2339-0-09", "8867-4-08", "2339-0-08"], "newest first, ties by id");
        let oldest = all_pages(&store, "patient=p-1&code=http://loinc.org|8867-4&_sort=date&_count=4").await.concat();
        assert_eq!(oldest, (0..10).map(|i| format!("8867-4-{i:02}")).collect::<Vec<_>>());
        let exact = all_pages(&store, "patient=p-1&code=http://loinc.org|8867-4&_count=10").await;
        assert_eq!(exact.len(), 1, "a page that takes the last one says there is no next");
    }

    #[tokio::test]
    async fn filters_apply_after_the_key_condition_and_pages_stay_whole() {
        let store = store(10).await;
        let n = |pages: &Vec<Vec<String>>| pages.concat().len();
        let odd_device = all_pages(&store, "patient=p-1&device=d-2&_count=2").await;
        assert_eq!(odd_device.concat(), ["8867-4-09", "8867-4-07", "8867-4-05", "8867-4-03", "8867-4-01"]);
        assert!(odd_device[..odd_device.len() - 1].iter().all(|p| p.len() == 2), "full pages: {odd_device:?}");
        assert_eq!(n(&all_pages(&store, "patient=p-1&category=laboratory").await), 10);
        assert_eq!(n(&all_pages(&store, "patient=p-1&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs,laboratory").await), 20);
        assert_eq!(n(&all_pages(&store, "patient=p-1&code=8867-4").await), 10);
        assert_eq!(n(&all_pages(&store, "patient=p-1&_lastUpdated=ge2026-11-23").await), 10);
        assert_eq!(n(&all_pages(&store, "patient=p-1&date=ge2026-11-22T10:05Z&date=lt2026-11-22T10:07Z").await), 4);
        assert_eq!(all_pages(&store, "device=d-1&date=2026-11-22T10:00Z").await.concat(), ["other", "8867-4-00", "2339-0-00"].map(String::from), "a device's readings of every patient, newest first");
        // Counted by the key condition, or by reading when a filter decides.
        for (query, expected) in [("patient=p-1", 20), ("patient=p-1&code=http://loinc.org|8867-4,http://loinc.org|2339-0", 20), ("patient=p-1&device=d-2", 5), ("patient=p-2", 1)] {
            let p = plan(&search(query).unwrap()).unwrap();
            assert_eq!(super::count(&store, &p).await.unwrap(), expected, "{query}");
        }
    }
}
