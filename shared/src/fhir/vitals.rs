//! The vital signs Vitalwire knows (FHIR R4 vital-signs profile) and the laboratory glucose
//! codes: for each, its LOINC code, the UCUM units it may carry with the spellings devices use
//! and the range a real measurement can take in that unit, and the NEWS2 parameter it feeds.
//! Readings, measurements and alerts all name vital signs by this type.
//!
//! A device's unit text is matched against each unit's spellings; the device's text is kept as
//! `Quantity.unit` and only the UCUM `code` is added, so nothing is converted.

use std::borrow::Cow;
use std::sync::LazyLock;

use crate::clinical::news2;
use crate::fhir::{Coding, Text};

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const VITAL_SIGNS_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";

/// Observation category (`vital-signs` or `laboratory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    VitalSigns,
    Laboratory,
}

impl Category {
    pub fn code(self) -> &'static str {
        match self {
            Category::VitalSigns => "vital-signs",
            Category::Laboratory => "laboratory",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Category::VitalSigns => "Vital Signs",
            Category::Laboratory => "Laboratory",
        }
    }
}

/// One UCUM unit, the spellings devices use for it (compared case-insensitively), and the
/// physiologically plausible range of a value in it (inclusive).
#[derive(Debug, PartialEq)]
pub struct Unit {
    pub ucum: &'static str,
    pub spellings: &'static [&'static str],
    pub plausible: (f64, f64),
}

impl Unit {
    /// Whether a value in this unit can be a real measurement.
    pub fn is_plausible(&self, value: f64) -> bool {
        (self.plausible.0..=self.plausible.1).contains(&value)
    }
}

/// A value outside the range a real measurement can take (a device fault, a unit mix-up).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{value} {unit} is outside the physiological range {low}–{high} {unit}")]
pub struct Implausible {
    /// The value as the device sent it.
    pub value: String,
    /// The unit as the device sent it.
    pub unit: String,
    pub low: f64,
    pub high: f64,
}

/// A vital sign or laboratory value the platform knows how to file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VitalSign {
    HeartRate,
    RespiratoryRate,
    OxygenSaturation,
    /// SpO2 measured by pulse oximetry: a kind of [`VitalSign::OxygenSaturation`].
    PulseOximetry,
    BodyTemperature,
    BodyWeight,
    BodyHeight,
    HeadCircumference,
    BodyMassIndex,
    SystolicBloodPressure,
    DiastolicBloodPressure,
    /// Carries systolic and diastolic in components, never one value.
    BloodPressurePanel,
    /// Groups a reading's Observations; no value of its own.
    VitalSignsPanel,
    BloodGlucose,
    BloodGlucoseMolar,
}

const PER_MIN_BEATS: Unit = Unit { ucum: "/min", spellings: &["/min", "1/min", "bpm", "beats/min", "{beats}/min"], plausible: (20.0, 300.0) };
const PER_MIN_BREATHS: Unit =
    Unit { ucum: "/min", spellings: &["/min", "1/min", "breaths/min", "{breaths}/min", "rpm"], plausible: (4.0, 60.0) };
const SPO2_PERCENT: Unit = Unit { ucum: "%", spellings: &["%"], plausible: (50.0, 100.0) };
const CELSIUS: Unit = Unit { ucum: "Cel", spellings: &["Cel", "C", "°C", "degC"], plausible: (25.0, 45.0) };
const FAHRENHEIT: Unit = Unit { ucum: "[degF]", spellings: &["[degF]", "F", "°F", "degF"], plausible: (77.0, 113.0) };
const WEIGHT_KG: Unit = Unit { ucum: "kg", spellings: &["kg"], plausible: (0.5, 500.0) };
const WEIGHT_G: Unit = Unit { ucum: "g", spellings: &["g"], plausible: (500.0, 500_000.0) };
const WEIGHT_LB: Unit = Unit { ucum: "[lb_av]", spellings: &["[lb_av]", "lb", "lbs"], plausible: (1.0, 1100.0) };
const HEIGHT_CM: Unit = Unit { ucum: "cm", spellings: &["cm"], plausible: (20.0, 280.0) };
const HEIGHT_IN: Unit = Unit { ucum: "[in_i]", spellings: &["[in_i]", "in"], plausible: (8.0, 110.0) };
const HEAD_CM: Unit = Unit { ucum: "cm", spellings: &["cm"], plausible: (20.0, 80.0) };
const HEAD_IN: Unit = Unit { ucum: "[in_i]", spellings: &["[in_i]", "in"], plausible: (8.0, 32.0) };
const SYSTOLIC_MMHG: Unit = Unit { ucum: "mm[Hg]", spellings: &["mm[Hg]", "mmHg", "mm Hg"], plausible: (50.0, 300.0) };
const DIASTOLIC_MMHG: Unit = Unit { ucum: "mm[Hg]", spellings: &["mm[Hg]", "mmHg", "mm Hg"], plausible: (30.0, 200.0) };
const KG_PER_M2: Unit = Unit { ucum: "kg/m2", spellings: &["kg/m2", "kg/m^2"], plausible: (5.0, 150.0) };
const MG_PER_DL: Unit = Unit { ucum: "mg/dL", spellings: &["mg/dL"], plausible: (10.0, 1000.0) };
const MMOL_PER_L: Unit = Unit { ucum: "mmol/L", spellings: &["mmol/L"], plausible: (0.5, 55.5) };

impl VitalSign {
    /// Every code in `../shared/conformance/fhir-vitals.md`, plus the remaining R4 vital-signs codes.
    pub const ALL: [VitalSign; 15] = [
        VitalSign::HeartRate,
        VitalSign::RespiratoryRate,
        VitalSign::OxygenSaturation,
        VitalSign::PulseOximetry,
        VitalSign::BodyTemperature,
        VitalSign::BodyWeight,
        VitalSign::BodyHeight,
        VitalSign::HeadCircumference,
        VitalSign::BodyMassIndex,
        VitalSign::SystolicBloodPressure,
        VitalSign::DiastolicBloodPressure,
        VitalSign::BloodPressurePanel,
        VitalSign::VitalSignsPanel,
        VitalSign::BloodGlucose,
        VitalSign::BloodGlucoseMolar,
    ];

    pub fn loinc(self) -> &'static str {
        match self {
            VitalSign::HeartRate => "8867-4",
            VitalSign::RespiratoryRate => "9279-1",
            VitalSign::OxygenSaturation => "2708-6",
            VitalSign::PulseOximetry => "59408-5",
            VitalSign::BodyTemperature => "8310-5",
            VitalSign::BodyWeight => "29463-7",
            VitalSign::BodyHeight => "8302-2",
            VitalSign::HeadCircumference => "9843-4",
            VitalSign::BodyMassIndex => "39156-5",
            VitalSign::SystolicBloodPressure => "8480-6",
            VitalSign::DiastolicBloodPressure => "8462-4",
            VitalSign::BloodPressurePanel => "85354-9",
            VitalSign::VitalSignsPanel => "85353-1",
            VitalSign::BloodGlucose => "2339-0",
            VitalSign::BloodGlucoseMolar => "15074-8",
        }
    }

    /// The LOINC display name.
    pub fn display(self) -> &'static str {
        match self {
            VitalSign::HeartRate => "Heart rate",
            VitalSign::RespiratoryRate => "Respiratory rate",
            VitalSign::OxygenSaturation => "Oxygen saturation in Arterial blood",
            VitalSign::PulseOximetry => "Oxygen saturation in Arterial blood by Pulse oximetry",
            VitalSign::BodyTemperature => "Body temperature",
            VitalSign::BodyWeight => "Body weight",
            VitalSign::BodyHeight => "Body height",
            VitalSign::HeadCircumference => "Head Occipital-frontal circumference",
            VitalSign::BodyMassIndex => "Body mass index (BMI) [Ratio]",
            VitalSign::SystolicBloodPressure => "Systolic blood pressure",
            VitalSign::DiastolicBloodPressure => "Diastolic blood pressure",
            VitalSign::BloodPressurePanel => "Blood pressure panel with all children optional",
            VitalSign::VitalSignsPanel => "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel",
            VitalSign::BloodGlucose => "Glucose [Mass/volume] in Blood",
            VitalSign::BloodGlucoseMolar => "Glucose [Moles/volume] in Blood",
        }
    }

    pub fn category(self) -> Category {
        match self {
            VitalSign::BloodGlucose | VitalSign::BloodGlucoseMolar => Category::Laboratory,
            _ => Category::VitalSigns,
        }
    }

    /// The URL of the specific FHIR R4 vital-signs profile, if the code has one.
    pub fn profile(self) -> Option<&'static str> {
        match self {
            VitalSign::HeartRate => Some("http://hl7.org/fhir/StructureDefinition/heartrate"),
            VitalSign::RespiratoryRate => Some("http://hl7.org/fhir/StructureDefinition/resprate"),
            VitalSign::OxygenSaturation | VitalSign::PulseOximetry => Some("http://hl7.org/fhir/StructureDefinition/oxygensat"),
            VitalSign::BodyTemperature => Some("http://hl7.org/fhir/StructureDefinition/bodytemp"),
            VitalSign::BodyWeight => Some("http://hl7.org/fhir/StructureDefinition/bodyweight"),
            VitalSign::BodyHeight => Some("http://hl7.org/fhir/StructureDefinition/bodyheight"),
            VitalSign::HeadCircumference => Some("http://hl7.org/fhir/StructureDefinition/headcircum"),
            VitalSign::BodyMassIndex => Some("http://hl7.org/fhir/StructureDefinition/bmi"),
            VitalSign::BloodPressurePanel => Some("http://hl7.org/fhir/StructureDefinition/bp"),
            VitalSign::VitalSignsPanel => Some("http://hl7.org/fhir/StructureDefinition/vitalspanel"),
            VitalSign::SystolicBloodPressure
            | VitalSign::DiastolicBloodPressure
            | VitalSign::BloodGlucose
            | VitalSign::BloodGlucoseMolar => None,
        }
    }

    /// The units a value of this vital sign may carry (none for panels).
    pub fn units(self) -> &'static [Unit] {
        match self {
            VitalSign::HeartRate => &[PER_MIN_BEATS],
            VitalSign::RespiratoryRate => &[PER_MIN_BREATHS],
            VitalSign::OxygenSaturation | VitalSign::PulseOximetry => &[SPO2_PERCENT],
            VitalSign::BodyTemperature => &[CELSIUS, FAHRENHEIT],
            VitalSign::BodyWeight => &[WEIGHT_KG, WEIGHT_G, WEIGHT_LB],
            VitalSign::BodyHeight => &[HEIGHT_CM, HEIGHT_IN],
            VitalSign::HeadCircumference => &[HEAD_CM, HEAD_IN],
            VitalSign::BodyMassIndex => &[KG_PER_M2],
            VitalSign::SystolicBloodPressure => &[SYSTOLIC_MMHG],
            VitalSign::DiastolicBloodPressure => &[DIASTOLIC_MMHG],
            VitalSign::BloodGlucose => &[MG_PER_DL],
            VitalSign::BloodGlucoseMolar => &[MMOL_PER_L],
            VitalSign::BloodPressurePanel | VitalSign::VitalSignsPanel => &[],
        }
    }

    /// A panel carries its values in components or members, never one top-level value.
    pub fn is_panel(self) -> bool {
        matches!(self, VitalSign::BloodPressurePanel | VitalSign::VitalSignsPanel)
    }

    /// The NEWS2 parameter a value of this vital sign scores as.
    pub fn news2(self) -> Option<news2::Parameter> {
        match self {
            VitalSign::RespiratoryRate => Some(news2::Parameter::RespiratoryRate),
            VitalSign::OxygenSaturation | VitalSign::PulseOximetry => Some(news2::Parameter::OxygenSaturation),
            VitalSign::SystolicBloodPressure | VitalSign::BloodPressurePanel => Some(news2::Parameter::SystolicBloodPressure),
            VitalSign::HeartRate => Some(news2::Parameter::HeartRate),
            VitalSign::BodyTemperature => Some(news2::Parameter::Temperature),
            _ => None,
        }
    }

    /// Its place in [`VitalSign::ALL`] (which lists them in declaration order: a test checks).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// This vital sign's LOINC coding with its display, made once and shared.
    pub fn standard_coding(self) -> &'static [Coding] {
        static BY_VITAL_SIGN: LazyLock<Vec<[Coding; 1]>> =
            LazyLock::new(|| VitalSign::ALL.iter().map(|v| [Coding::fixed(LOINC, v.loinc(), Some(v.display()))]).collect());
        &BY_VITAL_SIGN[self.index()]
    }

    /// The vital sign of a LOINC code.
    pub fn from_loinc(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.loinc() == code)
    }

    /// `system|code` of this vital sign's LOINC code: how its Observations are keyed.
    pub fn code_key(self) -> String {
        [LOINC, "|", self.loinc()].concat()
    }

    /// The UCUM unit a device's unit text stands for, if it is one of this vital sign's units.
    pub fn unit_for(self, device_unit: &str) -> Option<&'static Unit> {
        let wanted = device_unit.trim();
        self.units().iter().find(|u| u.spellings.iter().any(|s| s.eq_ignore_ascii_case(wanted)))
    }

    /// The UCUM codes this vital sign accepts, for error messages.
    pub fn ucum_codes(self) -> Vec<&'static str> {
        self.units().iter().map(|u| u.ucum).collect()
    }

    /// Checks that `value` (as the device sent it, in the device's unit `unit_text`, which
    /// stands for `unit`) can be a real measurement.
    pub fn check_plausible(self, value: &crate::fhir::Decimal, unit_text: &str, unit: &Unit) -> Result<(), Implausible> {
        if unit.is_plausible(value.as_f64()) {
            Ok(())
        } else {
            Err(Implausible { value: value.as_str().to_owned(), unit: unit_text.to_owned(), low: unit.plausible.0, high: unit.plausible.1 })
        }
    }
}

/// A coding as a device sent it, sharing the platform's own text where the device's is the same
/// (the LOINC system, a vital sign's LOINC code and display): the Observations built from a
/// reading then copy none of it.
pub fn coding_as_sent(system: Cow<'_, str>, code: Cow<'_, str>, display: Option<Cow<'_, str>>) -> Coding {
    let owned = |text: Cow<'_, str>| Text::Owned(text.into_owned());
    let vital = (system == LOINC).then(|| VitalSign::from_loinc(&code)).flatten();
    Coding {
        system: Some(if system == LOINC { Text::Borrowed(LOINC) } else { owned(system) }),
        code: Some(vital.map_or_else(|| owned(code), |v| Text::Borrowed(v.loinc()))),
        display: display.map(|d| match vital {
            Some(v) if d == v.display() => Text::Borrowed(v.display()),
            _ => owned(d),
        }),
    }
}

/// UCUM codes recognised verbatim on codes outside the catalogue (a manufacturer's battery
/// percentage, say): the unit is tagged as UCUM only when it already *is* the UCUM code.
const VERBATIM_UCUM: &[&str] = &[
    "%", "/min", "Cel", "[degF]", "kg", "g", "[lb_av]", "cm", "mm", "[in_i]", "mm[Hg]", "kg/m2", "mg/dL",
    "mmol/L", "s", "ms", "min", "h", "d", "V", "mV", "mA", "Hz", "L", "mL", "L/min", "{steps}",
];

/// The UCUM code for a unit text given on a code outside the catalogue, if it is one verbatim.
pub fn verbatim_ucum(unit: &str) -> Option<&'static str> {
    VERBATIM_UCUM.iter().copied().find(|u| *u == unit)
}

/// The canonical URL of a vital-signs profile by its short name.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::Decimal;

    #[test]
    fn codes_are_unique_and_found_by_loinc() {
        for (i, v) in VitalSign::ALL.into_iter().enumerate() {
            assert_eq!(v.index(), i, "{v:?}: ALL lists the vital signs in declaration order");
            assert_eq!(v.standard_coding(), [Coding::new(LOINC, v.loinc(), Some(v.display()))]);
            assert_eq!(VitalSign::from_loinc(v.loinc()), Some(v));
            assert_eq!(v.is_panel(), v.units().is_empty(), "{v:?}: panels and only panels have no unit");
        }
        assert_eq!(VitalSign::from_loinc("1234-5"), None);
    }

    #[test]
    fn plausible_ranges_depend_on_the_unit_and_keep_the_devices_text() {
        let temp = VitalSign::BodyTemperature;
        let f = temp.unit_for("F").unwrap();
        let c = temp.unit_for("c").unwrap();
        assert!(temp.check_plausible(&Decimal::parse("98.6").unwrap(), "F", f).is_ok());
        let err = temp.check_plausible(&Decimal::parse("98.6").unwrap(), "C", c).unwrap_err();
        assert_eq!(err.to_string(), "98.6 C is outside the physiological range 25–45 C");
        let hr = VitalSign::HeartRate;
        let bpm = hr.unit_for("bpm").unwrap();
        assert!(hr.check_plausible(&Decimal::parse("300").unwrap(), "bpm", bpm).is_ok());
        assert!(hr.check_plausible(&Decimal::parse("10000").unwrap(), "bpm", bpm).is_err());
        assert!(hr.check_plausible(&Decimal::parse("19.9").unwrap(), "bpm", bpm).is_err());
    }
}
