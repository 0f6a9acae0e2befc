// Builds the console into the Python package's static folder, which the server serves at / and /assets/.
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const outDir = fileURLToPath(new URL("./src/steun_console/static", import.meta.url));

// The policy ships inside index.html so that the console is protected whatever headers the server sets.
// Trusted Types make any accidental HTML sink (innerHTML and friends) throw instead of parsing agent data.
// Only applied to the build: Vite's dev client needs an inline error overlay.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

export function contentSecurityPolicy(): Plugin {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}" />`;
  return {
    name: "steun-csp",
    apply: "build",
    transformIndexHtml(html) {
      // Right after the charset, before anything the policy must cover.
      const charset = /<meta charset="utf-8" \/>/i;
      if (!charset.test(html)) throw new Error("index.html must declare <meta charset=\"utf-8\" />");
      return html.replace(charset, (match) => `${match}\n    ${meta}`);
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL("./web", import.meta.url)),
  base: "/",
  publicDir: false,
  plugins: [contentSecurityPolicy()],
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: true,
    // Keep every asset a file under /assets/: the server serves nothing else, and the CSP has no data: scripts.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` proxies the API to a locally running `steun demo`.
    proxy: {
      "/api": { target: "https://127.0.0.1:8443", secure: false, ws: true, changeOrigin: false },
    },
  },
});
