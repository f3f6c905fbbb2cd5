//! NEWS2 (National Early Warning Score 2, Royal College of Physicians, 2017): a score per
//! physiological parameter, their sum, and the clinical risk it means.
//!
//! Inputs are in the units of the chart: breaths/min, %, mmHg, beats/min, °C. Callers convert
//! device units for the computation only (the stored Observation keeps the device's value).
//! A missing parameter scores 0 and makes the set partial, as in the conformance vectors
//! (`../shared/conformance/news2/`).

/// A NEWS2 parameter that devices measure (consciousness and supplemental oxygen are reported
/// by people, not devices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parameter {
    RespiratoryRate,
    OxygenSaturation,
    SystolicBloodPressure,
    HeartRate,
    /// In °C.
    Temperature,
}

impl Parameter {
    pub const MEASURED: [Parameter; 5] = [
        Parameter::RespiratoryRate,
        Parameter::OxygenSaturation,
        Parameter::SystolicBloodPressure,
        Parameter::HeartRate,
        Parameter::Temperature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Parameter::RespiratoryRate => "respiratory_rate",
            Parameter::OxygenSaturation => "oxygen_saturation",
            Parameter::SystolicBloodPressure => "systolic_blood_pressure",
            Parameter::HeartRate => "heart_rate",
            Parameter::Temperature => "temperature",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::MEASURED.into_iter().find(|p| p.as_str() == text)
    }

    /// Sets this parameter's value in a set.
    pub fn set(self, set: &mut Observations, value: f64) {
        match self {
            Parameter::RespiratoryRate => set.respiratory_rate = Some(value),
            Parameter::OxygenSaturation => set.oxygen_saturation = Some(value),
            Parameter::SystolicBloodPressure => set.systolic_bp = Some(value),
            Parameter::HeartRate => set.heart_rate = Some(value),
            Parameter::Temperature => set.temperature = Some(value),
        }
    }

    /// This parameter's score in a scored set.
    pub fn score_in(self, score: &Score) -> u8 {
        match self {
            Parameter::RespiratoryRate => score.respiratory_rate,
            Parameter::OxygenSaturation => score.oxygen_saturation,
            Parameter::SystolicBloodPressure => score.systolic_bp,
            Parameter::HeartRate => score.heart_rate,
            Parameter::Temperature => score.temperature,
        }
    }
}

/// Which SpO2 scale applies: scale 2 is for patients with hypercapnic respiratory failure
/// (target 88–92 %), prescribed by a clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spo2Scale {
    #[default]
    Scale1,
    Scale2,
}

/// ACVPU: alert, new confusion, responds to voice, to pain, unresponsive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consciousness {
    Alert,
    Confusion,
    Voice,
    Pain,
    Unresponsive,
}

impl Consciousness {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "alert" | "a" => Some(Self::Alert),
            "confusion" | "c" => Some(Self::Confusion),
            "voice" | "v" => Some(Self::Voice),
            "pain" | "p" => Some(Self::Pain),
            "unresponsive" | "u" => Some(Self::Unresponsive),
            _ => None,
        }
    }
}

/// One set of observations (any may be missing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observations {
    pub respiratory_rate: Option<f64>,
    pub oxygen_saturation: Option<f64>,
    pub spo2_scale: Spo2Scale,
    /// Supplemental oxygen (`Some(false)`: air).
    pub on_oxygen: Option<bool>,
    pub systolic_bp: Option<f64>,
    pub heart_rate: Option<f64>,
    pub consciousness: Option<Consciousness>,
    /// °C.
    pub temperature: Option<f64>,
}

/// The clinical risk of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Aggregate 0–4.
    Low,
    /// A single parameter scoring 3 (with an aggregate under 5).
    LowMedium,
    /// Aggregate 5–6: urgent response.
    Medium,
    /// Aggregate 7 or more: emergency response.
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::LowMedium => "low-medium",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Low, Self::LowMedium, Self::Medium, Self::High].into_iter().find(|s| s.as_str() == text)
    }
}

/// The score of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub respiratory_rate: u8,
    pub oxygen_saturation: u8,
    pub oxygen_therapy: u8,
    pub systolic_bp: u8,
    pub heart_rate: u8,
    pub consciousness: u8,
    pub temperature: u8,
    pub overall: u8,
    pub severity: Severity,
    /// Some of the seven parameters were missing.
    pub partial: bool,
}

impl Score {
    /// The highest single-parameter score.
    pub fn highest_parameter(&self) -> u8 {
        [
            self.respiratory_rate,
            self.oxygen_saturation,
            self.oxygen_therapy,
            self.systolic_bp,
            self.heart_rate,
            self.consciousness,
            self.temperature,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// Scores `value` against ascending upper bounds: the first `(bound, score)` with
/// `value <= bound` wins, `above` otherwise.
fn banded(value: f64, bands: &[(f64, u8)], above: u8) -> u8 {
    bands.iter().find(|(bound, _)| value <= *bound).map_or(above, |(_, s)| *s)
}

pub fn respiratory_rate_score(rate: f64) -> u8 {
    banded(rate, &[(8.0, 3), (11.0, 1), (20.0, 0), (24.0, 2)], 3)
}

pub fn oxygen_saturation_score(spo2: f64, scale: Spo2Scale, on_oxygen: bool) -> u8 {
    match scale {
        Spo2Scale::Scale1 => banded(spo2, &[(91.0, 3), (93.0, 2), (95.0, 1)], 0),
        // Above 92 % on scale 2 scores only on oxygen (over-oxygenation risk).
        Spo2Scale::Scale2 if spo2 > 92.0 && on_oxygen => banded(spo2, &[(94.0, 1), (96.0, 2)], 3),
        Spo2Scale::Scale2 => banded(spo2, &[(83.0, 3), (85.0, 2), (87.0, 1)], 0),
    }
}

pub fn systolic_bp_score(systolic: f64) -> u8 {
    banded(systolic, &[(90.0, 3), (100.0, 2), (110.0, 1), (219.0, 0)], 3)
}

pub fn heart_rate_score(rate: f64) -> u8 {
    banded(rate, &[(40.0, 3), (50.0, 1), (90.0, 0), (110.0, 1), (130.0, 2)], 3)
}

pub fn temperature_score(celsius: f64) -> u8 {
    banded(celsius, &[(35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)], 2)
}

pub fn consciousness_score(c: Consciousness) -> u8 {
    if c == Consciousness::Alert {
        0
    } else {
        3
    }
}

/// NEWS2 of a set of observations.
pub fn score(o: &Observations) -> Score {
    let on_oxygen = o.on_oxygen.unwrap_or(false);
    let mut s = Score {
        respiratory_rate: o.respiratory_rate.map_or(0, respiratory_rate_score),
        oxygen_saturation: o.oxygen_saturation.map_or(0, |v| oxygen_saturation_score(v, o.spo2_scale, on_oxygen)),
        oxygen_therapy: if on_oxygen { 2 } else { 0 },
        systolic_bp: o.systolic_bp.map_or(0, systolic_bp_score),
        heart_rate: o.heart_rate.map_or(0, heart_rate_score),
        consciousness: o.consciousness.map_or(0, consciousness_score),
        temperature: o.temperature.map_or(0, temperature_score),
        overall: 0,
        severity: Severity::Low,
        partial: o.respiratory_rate.is_none()
            || o.oxygen_saturation.is_none()
            || o.on_oxygen.is_none()
            || o.systolic_bp.is_none()
            || o.heart_rate.is_none()
            || o.consciousness.is_none()
            || o.temperature.is_none(),
    };
    s.overall = s.respiratory_rate + s.oxygen_saturation + s.oxygen_therapy + s.systolic_bp + s.heart_rate + s.consciousness + s.temperature;
    s.severity = match s.overall {
        7.. => Severity::High,
        5..=6 => Severity::Medium,
        _ if s.highest_parameter() >= 3 => Severity::LowMedium,
        _ => Severity::Low,
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors_dir() -> std::path::PathBuf {
        crate::platform::reference_dir("conformance/news2")
    }

    fn observations(data: &Value) -> Observations {
        let num = |k: &str| data.get(k).and_then(Value::as_f64);
        Observations {
            respiratory_rate: num("respiratory_rate"),
            oxygen_saturation: num("oxygen_saturation"),
            spo2_scale: if data.get("spo2_scale").and_then(Value::as_u64) == Some(2) { Spo2Scale::Scale2 } else { Spo2Scale::Scale1 },
            on_oxygen: data.get("o2_therapy").and_then(Value::as_u64).map(|v| v == 1),
            systolic_bp: num("systolic_blood_pressure"),
            heart_rate: num("heart_rate"),
            consciousness: data.get("consciousness_acvpu").and_then(Value::as_str).map(|c| Consciousness::parse(c).expect("ACVPU")),
            temperature: num("temperature"),
        }
    }

    #[test]
    fn every_conformance_vector_scores_as_expected() {
        let mut checked = 0;
        let mut files: Vec<_> = std::fs::read_dir(vectors_dir()).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
            let vectors: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            for v in &vectors {
                let s = score(&observations(&v["data"]));
                let e = &v["expected"];
                let id = format!("{} {}", file.display(), v["id"]);
                let expected = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("{id}: {k}")) as u8;
                assert_eq!(s.respiratory_rate, expected("respiratory_rate_score"), "{id}");
                assert_eq!(s.oxygen_saturation, expected("oxygen_saturation_score"), "{id}");
                assert_eq!(s.oxygen_therapy, expected("o2_therapy_score"), "{id}");
                assert_eq!(s.systolic_bp, expected("blood_pressure_score"), "{id}");
                assert_eq!(s.heart_rate, expected("heart_rate_score"), "{id}");
                assert_eq!(s.consciousness, expected("consciousness_score"), "{id}");
                assert_eq!(s.temperature, expected("temperature_score"), "{id}");
                assert_eq!(s.overall, expected("overall_score"), "{id}");
                assert_eq!(Some(s.severity), Severity::parse(e["overall_severity"].as_str().unwrap()), "{id}");
                assert_eq!(s.partial, e["partial_set"].as_bool().unwrap(), "{id}");
                checked += 1;
            }
        }
        assert!(checked >= 70, "only {checked} vectors found");
    }

    #[test]
    fn a_full_set_aggregates_and_is_not_partial() {
        let full = Observations {
            respiratory_rate: Some(22.0),
            oxygen_saturation: Some(95.0),
            spo2_scale: Spo2Scale::Scale1,
            on_oxygen: Some(false),
            systolic_bp: Some(105.0),
            heart_rate: Some(115.0),
            consciousness: Some(Consciousness::Alert),
            temperature: Some(38.5),
        };
        let s = score(&full);
        // 2 (RR) + 1 (SpO2) + 0 + 1 (SBP) + 2 (HR) + 0 + 1 (temp)
        assert_eq!((s.overall, s.severity, s.partial), (7, Severity::High, false));
        let s = score(&Observations { heart_rate: Some(115.0), temperature: Some(38.5), ..full });
        assert_eq!((s.overall, s.severity), (7, Severity::High));
        let s = score(&Observations { respiratory_rate: Some(16.0), heart_rate: Some(70.0), systolic_bp: Some(120.0), temperature: Some(37.0), oxygen_saturation: Some(97.0), ..full });
        assert_eq!((s.overall, s.severity), (0, Severity::Low));
    }
}
