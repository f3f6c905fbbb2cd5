// The console in a real browser against `vitalwire-local up`, seeded by tests/console.rs: a
// clinician signs in through the local stand-in for Cognito's hosted UI, finds the raised alert
// on the worklist, acknowledges it, opens the patient and sees the readings charted; an admin
// registers a device. Screenshots of the main views go to docs/console/ for the README.
import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import path from "node:path";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/console.rs`);
  return value;
};
const patient = env("VITALWIRE_PATIENT");
const clinician = env("VITALWIRE_CLINICIAN");
const admin = env("VITALWIRE_ADMIN");
const heartRateReadings = Number(env("VITALWIRE_HEART_RATE_READINGS"));
const deployment = env("VITALWIRE_DEPLOYMENT");
const deployedDevice = env("VITALWIRE_DEPLOYED_DEVICE");
const batteryDevice = env("VITALWIRE_BATTERY_DEVICE");
const shots = process.env.VITALWIRE_SCREENSHOTS ?? path.join(import.meta.dirname, "..", "..", "docs", "console");

/** axe-core's WCAG 2.1 A and AA rules over the page as it stands: labels, names, roles,
 * contrast, landmarks. Every violation is listed with the elements it found. */
async function expectAccessible(page: Page, view: string) {
  const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const found = results.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`);
  expect(found, `accessibility of ${view}`).toEqual([]);
}

async function signIn(page: Page, user: string, role: "clinician" | "admin") {
  await page.goto("./");
  await page.getByRole("button", { name: "Sign in" }).click();
  // The local sign-in page (Cognito's hosted UI on AWS).
  await expect(page).toHaveTitle(/Vitalwire local sign-in/);
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Role").selectOption(role);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByText(`${user} (${role})`)).toBeVisible();
}

test.describe.configure({ mode: "serial" });

test("a clinician signs in, acknowledges the raised alert, and sees the patient's readings charted", async ({ page }) => {
  const failedCalls: string[] = [];
  page.on("response", (r) => {
    if (r.status() >= 400) failedCalls.push(`${r.status()} ${r.url()}`);
  });
  await signIn(page, clinician, "clinician");

  // The worklist shows the alert the seeded readings raised.
  await expect(page.getByRole("heading", { name: "Worklist" })).toBeVisible();
  const row = page.locator("tr[data-alert]").filter({ hasText: patient });
  await expect(row).toHaveCount(1);
  await expect(row.locator(".severity")).toHaveText("high");
  await expect(row).toContainText("NEWS2 9");
  await expect(row).toContainText("Respiratory rate 26");
  await expect(row.locator(".stage")).toHaveText("Asking the patient");
  await page.screenshot({ path: path.join(shots, "worklist.png"), fullPage: true });
  await expectAccessible(page, "the worklist");

  // Acknowledge it: the platform says so, and the flow's stage changes.
  await row.getByRole("button", { name: /^Acknowledge/ }).click();
  await expect(page.getByRole("status").filter({ hasText: `Alert for patient ${patient} acknowledged.` })).toBeVisible();
  await expect(row.locator(".stage")).toHaveText("Acknowledged");
  await expect(row.getByRole("button", { name: /^Acknowledge/ })).toBeDisabled();
  await row.getByRole("button", { name: /^History/ }).click();
  await expect(page.getByLabel("Alert history")).toContainText(`acknowledged by ${clinician}`);

  // The patient: latest vitals, and one point per heart-rate reading on the pulse chart.
  await row.getByRole("link", { name: patient }).click();
  await expect(page.getByRole("heading", { name: `Patient ${patient}` })).toBeVisible();
  await expect(page.getByRole("region", { name: "Latest vitals" })).toContainText("135");
  const pulse = page.locator('figure[data-chart="heart_rate"]');
  await expect(pulse).toHaveAttribute("data-points", String(heartRateReadings));
  await expect(pulse.locator("circle.reading-dot")).toHaveCount(heartRateReadings);
  // The NEWS2 bands are drawn behind the readings.
  expect(await pulse.locator(".recharts-reference-area").count()).toBeGreaterThan(0);
  const devices = page.getByRole("region", { name: "Devices and documents" });
  await expect(devices).toContainText("Last contact");
  // A device that reported only its battery (LifeOmic's code) is listed, with the charge.
  const cuff = devices.locator("li.device").filter({ hasText: batteryDevice });
  await expect(cuff).toContainText("87 %");
  await page.screenshot({ path: path.join(shots, "patient.png"), fullPage: true });
  await expectAccessible(page, "the patient view");

  // A tablet held upright: one column, nothing cut off sideways.
  await page.setViewportSize({ width: 768, height: 1024 });
  await expect(pulse.locator("circle.reading-dot")).toHaveCount(heartRateReadings);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: path.join(shots, "patient-tablet.png"), fullPage: false });

  // Keyboard: the skip link jumps past the navigation, and the worklist is reachable without a
  // mouse, its heading taking the focus as a screen reader expects.
  await page.getByRole("link", { name: "Skip to content" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.locator("main")).toBeFocused();
  await page.getByRole("link", { name: "Worklist", exact: true }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { name: "Worklist" })).toBeFocused();
  expect(failedCalls).toEqual([]);
});

test("an admin registers a device and sees it listed", async ({ page }) => {
  await signIn(page, admin, "admin");
  await expect(page.getByRole("heading", { name: "Administration" })).toBeVisible();
  const serial = `CONSOLE-${Date.now()}`;
  await page.getByLabel("Serial number").fill(serial);
  await page.getByLabel("Manufacturer").fill("Acme Medical");
  await page.getByLabel("Model").fill("BP-200");
  await page.getByLabel("Display name").fill("Ward cuff");
  await page.getByRole("button", { name: "Register" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Device registered." })).toBeVisible();
  const thing = `acme-medical-${serial.toLowerCase()}`;
  const listed = page.locator(`tr[data-device="${thing}"]`);
  await expect(listed).toContainText("REGISTERED");
  await expect(page.getByRole("heading", { name: `Device ${thing}` })).toBeVisible();

  // A refusal is said plainly: the same device again conflicts.
  await page.getByLabel("Serial number").fill(serial);
  await page.getByLabel("Manufacturer").fill("Acme Medical");
  await page.getByRole("button", { name: "Register" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "Could not register the device" })).toBeVisible();
  await page.screenshot({ path: path.join(shots, "admin.png"), fullPage: true });
  await expectAccessible(page, "the devices administration");
});

test("an admin follows a firmware deployment device by device and cancels it", async ({ page }) => {
  await signIn(page, admin, "admin");
  await page.getByRole("link", { name: "Firmware" }).click();
  const row = page.locator(`tr[data-deployment="${deployment}"]`);
  await expect(row).toContainText("BP-200 2.1.0");
  await expect(row).toContainText("IN_PROGRESS");
  await expect(row).toContainText("0 of 1");
  await row.getByRole("button", { name: "Devices" }).click();
  const detail = page.getByRole("region", { name: `Deployment ${deployment}` });
  await expect(detail).toContainText(`${deployedDevice}: QUEUED`);
  await page.screenshot({ path: path.join(shots, "firmware.png"), fullPage: true });
  await expectAccessible(page, "the firmware administration");
  await detail.getByRole("button", { name: "Cancel deployment" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Deployment cancelled" })).toBeVisible();
  await expect(detail).toContainText("CANCELED");
  await expect(page.locator(`tr[data-deployment="${deployment}"]`)).toContainText("CANCELED");
});
