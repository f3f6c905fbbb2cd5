import { defineConfig } from "@playwright/test";

// Driven by tests/console.rs, which starts `vitalwire-local up`, seeds it through the public
// API and passes the console's URL and the seeded names in the environment. The browser is
// Debian's Chromium (no browser download at install time).
export default defineConfig({
  testDir: "tests",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: process.env.VITALWIRE_CONSOLE_URL ?? "http://127.0.0.1:8080/console/",
    viewport: { width: 1366, height: 900 },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      // Chromium's own background traffic is refused by closed networks (CI); none is needed.
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
    },
  },
});
