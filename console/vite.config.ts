import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Relative asset paths: the same build is served at /console/ by the local platform and at the
// root of the CloudFront distribution on AWS.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: { outDir: "dist", sourcemap: true, chunkSizeWarningLimit: 900 },
});
