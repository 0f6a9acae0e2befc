// A test-only page (web/harness/) that exposes the session modules to Chromium tests on `window.steunHarness`.
// Built next to the console into harness-dist/ (git-ignored), never into the package the server serves.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { contentSecurityPolicy } from "./vite.config";

export default defineConfig({
  root: fileURLToPath(new URL("./web/harness", import.meta.url)),
  base: "/",
  publicDir: false,
  plugins: [contentSecurityPolicy()],
  build: {
    outDir: fileURLToPath(new URL("./harness-dist", import.meta.url)),
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
