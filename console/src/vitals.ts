// The vital signs the console charts, their LOINC codes, and the NEWS2 scoring bands (Royal
// College of Physicians, NEWS2 chart 2017) shaded behind them. Values are shown as filed: the
// one conversion, a temperature filed in °F drawn on the °C chart, is named on the point.
import type { Json } from "./api";

export const LOINC = "http://loinc.org";

/** A band of the chart: readings from `from` to `to` (exclusive) score `score`. */
export interface Band {
  from: number;
  to: number;
  score: number;
}

export interface VitalChart {
  key: string;
  label: string;
  unit: string;
  /** The codes searched (any matches); the value may be a component of a panel. */
  codes: string[];
  component?: string;
  domain: [number, number];
  bands: Band[];
}

// Bands meet half-way between the chart's whole-number rows (pulse 90 scores 0, 91 scores 1),
// and at .05 for temperatures given to one decimal.
export const CHARTS: VitalChart[] = [
  {
    key: "respiratory_rate", label: "Respiratory rate", unit: "/min", codes: ["9279-1"], domain: [0, 40],
    bands: [{ from: -Infinity, to: 8.5, score: 3 }, { from: 8.5, to: 11.5, score: 1 }, { from: 11.5, to: 20.5, score: 0 }, { from: 20.5, to: 24.5, score: 2 }, { from: 24.5, to: Infinity, score: 3 }],
  },
  {
    key: "oxygen_saturation", label: "SpO₂ (scale 1)", unit: "%", codes: ["59408-5", "2708-6"], domain: [80, 100],
    bands: [{ from: -Infinity, to: 91.5, score: 3 }, { from: 91.5, to: 93.5, score: 2 }, { from: 93.5, to: 95.5, score: 1 }, { from: 95.5, to: Infinity, score: 0 }],
  },
  {
    key: "systolic_blood_pressure", label: "Systolic blood pressure", unit: "mmHg", codes: ["85354-9", "8480-6"], component: "8480-6", domain: [60, 240],
    bands: [{ from: -Infinity, to: 90.5, score: 3 }, { from: 90.5, to: 100.5, score: 2 }, { from: 100.5, to: 110.5, score: 1 }, { from: 110.5, to: 219.5, score: 0 }, { from: 219.5, to: Infinity, score: 3 }],
  },
  {
    key: "heart_rate", label: "Pulse", unit: "/min", codes: ["8867-4"], domain: [30, 180],
    bands: [{ from: -Infinity, to: 40.5, score: 3 }, { from: 40.5, to: 50.5, score: 1 }, { from: 50.5, to: 90.5, score: 0 }, { from: 90.5, to: 110.5, score: 1 }, { from: 110.5, to: 130.5, score: 2 }, { from: 130.5, to: Infinity, score: 3 }],
  },
  {
    key: "temperature", label: "Temperature", unit: "°C", codes: ["8310-5"], domain: [33, 42],
    bands: [{ from: -Infinity, to: 35.05, score: 3 }, { from: 35.05, to: 36.05, score: 1 }, { from: 36.05, to: 38.05, score: 0 }, { from: 38.05, to: 39.05, score: 1 }, { from: 39.05, to: Infinity, score: 2 }],
  },
];

/** The shade of a NEWS2 score, as on the paper chart (and readable as text beside it). */
export const BAND_COLOURS: Record<number, string> = { 0: "transparent", 1: "#fff3b0", 2: "#ffd08a", 3: "#f8a5a5" };

export interface Point {
  at: number;
  value: number;
  /** The value as filed, with its unit, when it differs from what is drawn. */
  filedAs?: string;
  observationId: string;
}

function codings(concept: Json | undefined): Json[] {
  return concept?.coding ?? [];
}

export function hasCode(observation: Json, code: string): boolean {
  return codings(observation.code).some((c) => c.code === code);
}

/** The quantity of an Observation, or of its component with `code`. */
export function quantity(observation: Json, component?: string): Json | undefined {
  if (component && !hasCode(observation, component)) {
    return observation.component?.find((c: Json) => codings(c.code).some((k) => k.code === component))?.valueQuantity;
  }
  return observation.valueQuantity;
}

export function effectiveAt(observation: Json): string | undefined {
  return observation.effectiveDateTime ?? observation.effectivePeriod?.start ?? observation.issued;
}

/** A chart point from an Observation, or none when it holds no number for this chart. */
export function toPoint(chart: VitalChart, observation: Json): Point | null {
  const q = quantity(observation, chart.component);
  const at = Date.parse(effectiveAt(observation) ?? "");
  if (!q || typeof q.value !== "number" || Number.isNaN(at)) return null;
  if (chart.key === "temperature" && q.code === "[degF]") {
    const celsius = Math.round(((q.value - 32) * 5) / 9 * 10) / 10;
    return { at, value: celsius, filedAs: `${q.value} °F`, observationId: observation.id };
  }
  return { at, value: q.value, observationId: observation.id };
}

/** A reading as a person reads it: value and unit as filed, or both pressures of a panel. */
export function display(observation: Json): string {
  const parts = observation.component as Json[] | undefined;
  if (hasCode(observation, "85354-9") && parts) {
    const sys = quantity(observation, "8480-6");
    const dia = quantity(observation, "8462-4");
    if (sys && dia) return `${sys.value}/${dia.value} ${unitLabel(sys) || "mmHg"}`;
  }
  const q = observation.valueQuantity;
  if (q) return `${q.value} ${unitLabel(q)}`.trim();
  if (observation.valueString) return observation.valueString;
  if (observation.valueCodeableConcept) return observation.valueCodeableConcept.text ?? codings(observation.valueCodeableConcept)[0]?.display ?? "";
  if (parts?.length) return parts.map((c) => `${c.code?.text ?? codings(c.code)[0]?.display ?? ""} ${c.valueQuantity?.value ?? ""}`).join(", ");
  return "—";
}

// UCUM codes as people write them. The device's own spelling (`unit`) is kept in the record, but
// "C" or "Cel" on a screen reads as a typo; an unknown code is shown as the device wrote it.
const UCUM_SYMBOLS: Record<string, string> = { Cel: "°C", "[degF]": "°F", "mm[Hg]": "mmHg", "/min": "/min", "%": "%", kg: "kg", "[lb_av]": "lb", cm: "cm" };

/** The unit of a quantity as people read it: the UCUM code's symbol, else the device's unit. */
export function unitLabel(q: Json): string {
  if (q.system === "http://unitsofmeasure.org" && UCUM_SYMBOLS[q.code]) return UCUM_SYMBOLS[q.code];
  return q.unit ?? q.code ?? "";
}

/** What an Observation is: the chart's name for a charted vital sign, else the code's text. */
export function title(observation: Json): string {
  const chart = CHARTS.find((c) => c.codes.some((code) => hasCode(observation, code)));
  if (chart) return chart.key === "systolic_blood_pressure" && hasCode(observation, "85354-9") ? "Blood pressure" : chart.label;
  return observation.code?.text ?? codings(observation.code)[0]?.display ?? codings(observation.code)[0]?.code ?? "Observation";
}

/** The device a reading came from (`Device/<thing name>`), if it names one. */
export function deviceOf(observation: Json): string | null {
  const ref: string | undefined = observation.device?.reference;
  return ref?.startsWith("Device/") ? ref.slice("Device/".length) : null;
}

/** The codes a device's battery charge comes under, as FHIR search tokens: IEEE 11073
 * MDC_ATTR_VAL_BATT_CHARGE, and the "Battery Percentage" code of LifeOmic's device samples, which
 * devices written for that platform publish unchanged. */
export const BATTERY_CODES = ["urn:iso:std:iso:11073:10101|67996", "http://lifeomic.com/fhir/devices|9750d5e5-d766-4793-a97d-16179578cc4d"];

/** The NEWS2 parameter names the platform uses, as people read them. */
export const PARAMETER_LABELS: Record<string, string> = {
  respiratory_rate: "Respiratory rate",
  oxygen_saturation: "SpO₂",
  o2_therapy: "Supplemental O₂",
  systolic_blood_pressure: "Systolic BP",
  heart_rate: "Pulse",
  consciousness: "Consciousness",
  temperature: "Temperature",
  glucose: "Glucose",
  nurse_concern: "Nurse concern",
};
