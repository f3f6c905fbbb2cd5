//! The catalogue of codes Vitalwire knows: LOINC vital signs (FHIR R4 vital-signs profile) and
//! the laboratory glucose codes, each with the UCUM units it may carry.
//!
//! A device's unit text is matched against each unit's accepted spellings; the device's text is
//! kept as `Quantity.unit` and only the UCUM `code` is added, so nothing is converted.

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

/// One UCUM unit and the spellings devices use for it (compared case-insensitively).
#[derive(Debug, PartialEq)]
pub struct Unit {
    pub ucum: &'static str,
    pub spellings: &'static [&'static str],
}

/// A code the platform knows how to file.
#[derive(Debug, PartialEq)]
pub struct KnownCode {
    pub loinc: &'static str,
    pub display: &'static str,
    pub category: Category,
    /// The specific FHIR R4 vital-signs profile, if the code has one.
    pub profile: Option<&'static str>,
    pub units: &'static [Unit],
    /// A panel carries its values in components, never one top-level value.
    pub panel: bool,
}

impl KnownCode {
    /// The UCUM unit the device's unit text stands for, if it is one of this code's units.
    pub fn unit_for(&self, device_unit: &str) -> Option<&'static Unit> {
        let wanted = device_unit.trim();
        self.units.iter().find(|u| u.spellings.iter().any(|s| s.eq_ignore_ascii_case(wanted)))
    }

    /// The UCUM codes this code accepts, for error messages.
    pub fn ucum_codes(&self) -> Vec<&'static str> {
        self.units.iter().map(|u| u.ucum).collect()
    }
}

const PER_MIN_BEATS: Unit = Unit { ucum: "/min", spellings: &["/min", "1/min", "bpm", "beats/min", "{beats}/min"] };
const PER_MIN_BREATHS: Unit =
    Unit { ucum: "/min", spellings: &["/min", "1/min", "breaths/min", "{breaths}/min", "rpm"] };
const PERCENT: Unit = Unit { ucum: "%", spellings: &["%"] };
const CELSIUS: Unit = Unit { ucum: "Cel", spellings: &["Cel", "C", "°C", "degC"] };
const FAHRENHEIT: Unit = Unit { ucum: "[degF]", spellings: &["[degF]", "F", "°F", "degF"] };
const KILOGRAM: Unit = Unit { ucum: "kg", spellings: &["kg"] };
const GRAM: Unit = Unit { ucum: "g", spellings: &["g"] };
const POUND: Unit = Unit { ucum: "[lb_av]", spellings: &["[lb_av]", "lb", "lbs"] };
const CENTIMETRE: Unit = Unit { ucum: "cm", spellings: &["cm"] };
const INCH: Unit = Unit { ucum: "[in_i]", spellings: &["[in_i]", "in"] };
const MMHG: Unit = Unit { ucum: "mm[Hg]", spellings: &["mm[Hg]", "mmHg", "mm Hg"] };
const KG_PER_M2: Unit = Unit { ucum: "kg/m2", spellings: &["kg/m2", "kg/m^2"] };
const MG_PER_DL: Unit = Unit { ucum: "mg/dL", spellings: &["mg/dL"] };
const MMOL_PER_L: Unit = Unit { ucum: "mmol/L", spellings: &["mmol/L"] };

const fn vital(
    loinc: &'static str,
    display: &'static str,
    profile: Option<&'static str>,
    units: &'static [Unit],
) -> KnownCode {
    KnownCode { loinc, display, category: Category::VitalSigns, profile, units, panel: false }
}

/// Every code in `../shared/conformance/fhir-vitals.md`, plus the remaining R4 vital-signs codes.
pub static CATALOGUE: &[KnownCode] = &[
    vital("8867-4", "Heart rate", Some("heartrate"), &[PER_MIN_BEATS]),
    vital("9279-1", "Respiratory rate", Some("resprate"), &[PER_MIN_BREATHS]),
    vital("2708-6", "Oxygen saturation in Arterial blood", Some("oxygensat"), &[PERCENT]),
    vital(
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        Some("oxygensat"),
        &[PERCENT],
    ),
    vital("8310-5", "Body temperature", Some("bodytemp"), &[CELSIUS, FAHRENHEIT]),
    vital("29463-7", "Body weight", Some("bodyweight"), &[KILOGRAM, GRAM, POUND]),
    vital("8302-2", "Body height", Some("bodyheight"), &[CENTIMETRE, INCH]),
    vital("9843-4", "Head Occipital-frontal circumference", Some("headcircum"), &[CENTIMETRE, INCH]),
    vital("39156-5", "Body mass index (BMI) [Ratio]", Some("bmi"), &[KG_PER_M2]),
    vital("8480-6", "Systolic blood pressure", None, &[MMHG]),
    vital("8462-4", "Diastolic blood pressure", None, &[MMHG]),
    KnownCode {
        loinc: "85354-9",
        display: "Blood pressure panel with all children optional",
        category: Category::VitalSigns,
        profile: Some("bp"),
        units: &[],
        panel: true,
    },
    KnownCode {
        loinc: "85353-1",
        display: "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel",
        category: Category::VitalSigns,
        profile: Some("vitalspanel"),
        units: &[],
        panel: true,
    },
    KnownCode {
        loinc: "2339-0",
        display: "Glucose [Mass/volume] in Blood",
        category: Category::Laboratory,
        profile: None,
        units: &[MG_PER_DL],
        panel: false,
    },
    KnownCode {
        loinc: "15074-8",
        display: "Glucose [Moles/volume] in Blood",
        category: Category::Laboratory,
        profile: None,
        units: &[MMOL_PER_L],
        panel: false,
    },
];

/// Looks up a LOINC code in the catalogue.
pub fn lookup(loinc_code: &str) -> Option<&'static KnownCode> {
    CATALOGUE.iter().find(|c| c.loinc == loinc_code)
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
pub fn profile_url(short: &str) -> String {
    format!("http://hl7.org/fhir/StructureDefinition/{short}")
}
