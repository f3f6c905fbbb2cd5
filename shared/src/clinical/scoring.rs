//! NEWS2 as the Polaris scoring engine computes it (`polaris-foundation/dhos-scoring-engine`,
//! `src/news2/`), for `POST /scores/news2`: its input (`time`, the vital signs, `spo2_scale`,
//! `o2_therapy` in L/min, `o2_therapy_mask`, `consciousness_acvpu`, `nurse_concern`, and the
//! monitoring intervals in `config`) and its output fields, but not its `ranking` or `obx_*`.
//!
//! The engine is a set of rules, each a band of one parameter, evaluated in file order; when
//! two rules of a parameter match (at a band's exact edge, or a missing consciousness, which
//! both "not alert" and "missing" match), the later one wins. The bands are the RCP chart's,
//! with edges halfway between the chart's whole numbers (tenths for temperature), so a value
//! between two rows scores as the nearer row. This module keeps those rules as they are.
//!
//! Where it differs from the platform's own scoring ([`super::news2`], used on device
//! readings): a nurse's concern makes the severity high and the display `3C`; supplemental
//! oxygen without a delivery device makes the set partial (a missing oxygen field does not);
//! a set with nothing in it is `empty_set` and displays `--`; and SpO2 without a scale scores 0,
//! as the engine does (no rule matches it).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::news2::Consciousness;

/// Why the engine refuses an input: its messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoringRefusal {
    #[error("Missing or invalid timestamp")]
    Time,
    #[error("Missing config values in body")]
    Config,
    #[error("Invalid ACVPU passed in: '{0}'")]
    Acvpu(String),
    /// Not the engine's (it compares whatever it gets): a value that is not a number.
    #[error("{0} must be a number")]
    NotANumber(&'static str),
    #[error("the body must be a JSON object")]
    NotAnObject,
}

impl ScoringRefusal {
    /// The input field it is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Config => "config",
            Self::Acvpu(_) => "consciousness_acvpu",
            Self::NotANumber(field) => field,
            Self::NotAnObject => "body",
        }
    }
}

/// Hours to the next set, by severity (the engine's `config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intervals {
    pub zero: f64,
    pub low: f64,
    pub low_medium: f64,
    pub medium: f64,
    pub high: f64,
}

/// One observation set in the engine's terms (absent and `""` both mean not measured).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSet {
    pub time: DateTime<Utc>,
    pub respiratory_rate: Option<f64>,
    pub heart_rate: Option<f64>,
    pub oxygen_saturation: Option<f64>,
    pub spo2_scale: Option<f64>,
    /// Supplemental oxygen flow, L/min.
    pub o2_therapy: Option<f64>,
    pub o2_therapy_mask: Option<String>,
    pub systolic_blood_pressure: Option<f64>,
    pub consciousness: Option<Consciousness>,
    pub temperature: Option<f64>,
    pub nurse_concern: Option<String>,
    pub intervals: Intervals,
}

/// The engine's answer, its fields and names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineScore {
    pub respiratory_rate_score: u8,
    pub oxygen_saturation_score: u8,
    pub o2_therapy_score: u8,
    pub blood_pressure_score: u8,
    pub heart_rate_score: u8,
    pub consciousness_score: u8,
    pub temperature_score: u8,
    pub overall_score: u8,
    pub overall_severity: &'static str,
    pub overall_score_display: String,
    pub partial_set: bool,
    /// Only when true, as the engine sets it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_set: bool,
    pub time_next_obs_set_due: String,
    pub monitoring_instruction: &'static str,
}

/// A value the engine treats as given: present, not null, not `""`.
fn given<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null() && v.as_str() != Some(""))
}

fn number(body: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, ScoringRefusal> {
    match given(body, name) {
        None => Ok(None),
        Some(v) => v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).map(Some).ok_or(ScoringRefusal::NotANumber(name)),
    }
}

fn text(body: &Map<String, Value>, name: &str) -> Option<String> {
    given(body, name).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
}

/// `time` as the engine's date library reads it: ISO 8601 with an offset, or without one (then
/// UTC, this service's zone), or a date alone.
fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc()))
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()))
}

impl EngineSet {
    /// Reads the engine's input, checked in its order: `time`, then `config`, then ACVPU.
    pub fn from_json(body: &Value) -> Result<Self, ScoringRefusal> {
        let body = body.as_object().ok_or(ScoringRefusal::NotAnObject)?;
        let time = given(body, "time").and_then(Value::as_str).and_then(time).ok_or(ScoringRefusal::Time)?;
        let empty = Map::new();
        let config = given(body, "config").and_then(Value::as_object).unwrap_or(&empty);
        let interval = |name: &'static str| number(config, name).ok().flatten().ok_or(ScoringRefusal::Config);
        let intervals = Intervals {
            zero: interval("zero_severity_interval_hours")?,
            low: interval("low_severity_interval_hours")?,
            low_medium: interval("low_medium_severity_interval_hours")?,
            medium: interval("medium_severity_interval_hours")?,
            high: interval("high_severity_interval_hours")?,
        };
        let consciousness = match text(body, "consciousness_acvpu") {
            None => None,
            Some(c) => Some(Consciousness::parse(&c).ok_or(ScoringRefusal::Acvpu(c))?),
        };
        Ok(Self {
            time,
            respiratory_rate: number(body, "respiratory_rate")?,
            heart_rate: number(body, "heart_rate")?,
            oxygen_saturation: number(body, "oxygen_saturation")?,
            spo2_scale: number(body, "spo2_scale")?,
            o2_therapy: number(body, "o2_therapy")?,
            o2_therapy_mask: text(body, "o2_therapy_mask"),
            systolic_blood_pressure: number(body, "systolic_blood_pressure")?,
            consciousness,
            temperature: number(body, "temperature")?,
            nurse_concern: text(body, "nurse_concern"),
            intervals,
        })
    }
}

/// A parameter's rules in the engine's file order: the score of the last one that matches, 0 if
/// none does.
fn last_match(rules: &[(u8, bool)]) -> u8 {
    rules.iter().rev().find(|(_, matches)| *matches).map_or(0, |(score, _)| *score)
}

/// `value` within `[from, to)`.
fn within(value: Option<f64>, from: f64, to: f64) -> bool {
    value.is_some_and(|v| v >= from && v < to)
}

fn below(value: Option<f64>, bound: f64) -> bool {
    value.is_some_and(|v| v < bound)
}

fn at_least(value: Option<f64>, bound: f64) -> bool {
    value.is_some_and(|v| v >= bound)
}

/// Scores a set as the engine does.
pub fn score(set: &EngineSet) -> EngineScore {
    let rr = set.respiratory_rate;
    let respiratory_rate_score = last_match(&[
        (3, below(rr, 8.5) || at_least(rr, 24.5)),
        (2, within(rr, 20.5, 24.5)),
        (1, rr.is_some_and(|v| v > 8.5 && v <= 11.5)),
        (0, rr.is_some_and(|v| v > 11.5 && v <= 20.5) || rr.is_none()),
    ]);
    let (spo2, scale) = (set.oxygen_saturation, set.spo2_scale);
    let (scale1, scale2) = (scale == Some(1.0), scale == Some(2.0));
    let on_oxygen = set.o2_therapy.is_some_and(|f| f > 0.0);
    let oxygen_saturation_score = last_match(&[
        (3, (below(spo2, 91.5) && scale1) || (below(spo2, 83.5) && scale2) || (at_least(spo2, 96.5) && scale2 && on_oxygen)),
        (2, (within(spo2, 91.5, 93.5) && scale1) || (within(spo2, 83.5, 85.5) && scale2) || (within(spo2, 94.5, 96.5) && scale2 && on_oxygen)),
        (1, (within(spo2, 93.5, 95.5) && scale1) || (within(spo2, 85.5, 87.5) && scale2) || (spo2.is_some_and(|v| v > 92.5 && v < 94.5) && scale2 && on_oxygen)),
        (
            0,
            (at_least(spo2, 95.5) && scale1)
                || (within(spo2, 87.5, 92.5) && scale2)
                || (at_least(spo2, 92.5) && scale2 && (set.o2_therapy == Some(0.0) || set.o2_therapy.is_none()))
                || spo2.is_none(),
        ),
    ]);
    let o2_therapy_score = last_match(&[(2, on_oxygen), (0, set.o2_therapy == Some(0.0) || set.o2_therapy.is_none())]);
    let bp = set.systolic_blood_pressure;
    let blood_pressure_score = last_match(&[
        (3, below(bp, 90.5) || at_least(bp, 219.5)),
        (2, within(bp, 90.5, 100.5)),
        (1, within(bp, 100.5, 110.5)),
        (0, within(bp, 110.5, 219.5) || bp.is_none()),
    ]);
    let hr = set.heart_rate;
    let heart_rate_score = last_match(&[
        (3, below(hr, 40.5) || at_least(hr, 130.5)),
        (2, within(hr, 110.5, 130.5)),
        (1, within(hr, 40.5, 50.5) || within(hr, 90.5, 110.5)),
        (0, within(hr, 50.5, 90.5) || hr.is_none()),
    ]);
    let c = set.consciousness;
    let consciousness_score = last_match(&[(3, c != Some(Consciousness::Alert)), (0, c == Some(Consciousness::Alert) || c.is_none())]);
    let t = set.temperature;
    let temperature_score = last_match(&[
        (3, below(t, 35.05)),
        (2, at_least(t, 39.05)),
        (1, within(t, 35.05, 36.05) || within(t, 38.05, 39.05)),
        (0, within(t, 36.05, 38.05) || t.is_none()),
    ]);
    let scores = [respiratory_rate_score, oxygen_saturation_score, o2_therapy_score, blood_pressure_score, heart_rate_score, consciousness_score, temperature_score];
    let overall_score: u8 = scores.iter().sum();
    let concern = set.nurse_concern.is_some();
    let (severity, hours, instruction) = match () {
        _ if concern || overall_score >= 7 => ("high", set.intervals.high, "high_monitoring"),
        _ if overall_score >= 5 => ("medium", set.intervals.medium, "medium_monitoring"),
        _ if scores.iter().any(|s| *s >= 3) => ("low-medium", set.intervals.low_medium, "low_medium_monitoring"),
        _ if overall_score == 0 => ("low", set.intervals.zero, "routine_monitoring"),
        _ => ("low", set.intervals.low, "low_monitoring"),
    };
    let partial_set = rr.is_none()
        || spo2.is_none()
        || (on_oxygen && set.o2_therapy_mask.is_none())
        || bp.is_none()
        || hr.is_none()
        || c.is_none()
        || t.is_none();
    let empty_set = rr.is_none() && hr.is_none() && spo2.is_none() && bp.is_none() && set.o2_therapy.is_none() && c.is_none() && t.is_none() && !concern;
    let overall_score_display = if concern {
        format!("{overall_score}C")
    } else if empty_set {
        "--".to_owned()
    } else {
        overall_score.to_string()
    };
    // Milliseconds, as the engine's date library adds fractional hours.
    let due = set.time + Duration::milliseconds((hours * 3_600_000.0).round() as i64);
    EngineScore {
        respiratory_rate_score,
        oxygen_saturation_score,
        o2_therapy_score,
        blood_pressure_score,
        heart_rate_score,
        consciousness_score,
        temperature_score,
        overall_score,
        overall_severity: severity,
        overall_score_display,
        partial_set,
        empty_set,
        time_next_obs_set_due: due.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        monitoring_instruction: instruction,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CONFIG: &str = r#"{"zero_severity_interval_hours": 12, "low_severity_interval_hours": 6, "low_medium_severity_interval_hours": 1, "medium_severity_interval_hours": 1, "high_severity_interval_hours": 0}"#;

    fn scored(mut body: Value) -> Value {
        body["config"] = serde_json::from_str(CONFIG).unwrap();
        body["time"] = json!("2018-01-01T00:00:00.000Z");
        serde_json::to_value(score(&EngineSet::from_json(&body).unwrap())).unwrap()
    }

    #[test]
    fn the_readme_example_scores_as_the_readme_says() {
        let s = scored(json!({"respiratory_rate": 22, "oxygen_saturation": 95, "spo2_scale": 1, "o2_therapy": 2, "o2_therapy_mask": "N",
            "systolic_blood_pressure": 105, "heart_rate": 115, "consciousness_acvpu": "A", "temperature": 38.5, "nurse_concern": "looks unwell"}));
        let expected = json!({"respiratory_rate_score": 2, "oxygen_saturation_score": 1, "o2_therapy_score": 2, "blood_pressure_score": 1, "heart_rate_score": 2,
            "consciousness_score": 0, "temperature_score": 1, "overall_score": 9, "overall_severity": "high", "overall_score_display": "9C",
            "partial_set": false, "time_next_obs_set_due": "2018-01-01T00:00:00.000Z", "monitoring_instruction": "high_monitoring"});
        assert_eq!(s, expected);
    }

    #[test]
    fn a_nurse_concern_makes_the_set_high_and_its_display_c() {
        let s = scored(json!({"heart_rate": 70, "nurse_concern": "Patient looks unwell"}));
        assert_eq!((s["overall_score"].clone(), s["overall_severity"].clone(), s["overall_score_display"].clone()), (json!(0), json!("high"), json!("0C")));
        assert_eq!((s["monitoring_instruction"].clone(), s["time_next_obs_set_due"].clone()), (json!("high_monitoring"), json!("2018-01-01T00:00:00.000Z")));
        assert!(s.get("empty_set").is_none(), "a concern alone is not an empty set");
    }

    #[test]
    fn oxygen_without_a_device_is_partial_and_an_empty_set_shows_dashes() {
        let full = json!({"respiratory_rate": 16, "oxygen_saturation": 97, "spo2_scale": 1, "systolic_blood_pressure": 120, "heart_rate": 70, "consciousness_acvpu": "A", "temperature": 37.0});
        assert_eq!(scored(full.clone())["partial_set"], false, "a missing oxygen field is no gap, as in the engine");
        let mut on_oxygen = full.clone();
        on_oxygen["o2_therapy"] = json!(2);
        let s = scored(on_oxygen.clone());
        assert_eq!((s["partial_set"].clone(), s["o2_therapy_score"].clone()), (json!(true), json!(2)), "on oxygen without a device");
        on_oxygen["o2_therapy_mask"] = json!("N");
        assert_eq!(scored(on_oxygen)["partial_set"], false);
        let empty = scored(json!({}));
        assert_eq!((empty["empty_set"].clone(), empty["overall_score_display"].clone(), empty["monitoring_instruction"].clone()), (json!(true), json!("--"), json!("routine_monitoring")));
        assert_eq!(scored(json!({"temperature": ""}))["empty_set"], true, "\"\" is not measured");
    }

    #[test]
    fn values_between_chart_rows_score_as_the_nearer_row_and_edges_as_the_later_rule() {
        assert_eq!(scored(json!({"oxygen_saturation": 91.4, "spo2_scale": 1}))["oxygen_saturation_score"], 3);
        assert_eq!(scored(json!({"oxygen_saturation": 91.5, "spo2_scale": 1}))["oxygen_saturation_score"], 2);
        assert_eq!(scored(json!({"temperature": 38.04}))["temperature_score"], 0);
        assert_eq!(scored(json!({"temperature": 38.05}))["temperature_score"], 1);
        assert_eq!(scored(json!({"respiratory_rate": 20.5}))["respiratory_rate_score"], 0, "both the 2 and the 0 rule match: the later wins");
        assert_eq!(scored(json!({"oxygen_saturation": 97, "spo2_scale": 2, "o2_therapy": 1}))["oxygen_saturation_score"], 3, "over-oxygenation on scale 2");
        assert_eq!(scored(json!({"oxygen_saturation": 97, "spo2_scale": 2}))["oxygen_saturation_score"], 0, "on air");
    }

    #[test]
    fn inputs_are_refused_with_the_engines_messages_in_its_order() {
        let refused = |body: Value| EngineSet::from_json(&body).unwrap_err();
        let config: Value = serde_json::from_str(CONFIG).unwrap();
        assert_eq!(refused(json!({"config": config})), ScoringRefusal::Time);
        assert_eq!(refused(json!({"time": "yesterday", "config": config})), ScoringRefusal::Time);
        assert_eq!(refused(json!({"time": "2018-01-01T00:00:00.000Z"})), ScoringRefusal::Config);
        let mut partial = config.clone();
        partial.as_object_mut().unwrap().remove("high_severity_interval_hours");
        assert_eq!(refused(json!({"time": "2018-01-01T00:00:00.000Z", "config": partial, "consciousness_acvpu": "x"})), ScoringRefusal::Config, "config before ACVPU");
        assert_eq!(refused(json!({"time": "2018-01-01T00:00:00.000Z", "config": config, "consciousness_acvpu": "drowsy"})).to_string(), "Invalid ACVPU passed in: 'drowsy'");
        assert_eq!(refused(json!({"time": "2018-01-01T00:00:00.000Z", "config": config, "heart_rate": "fast"})), ScoringRefusal::NotANumber("heart_rate"));
    }
}
