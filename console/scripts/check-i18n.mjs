// Fails the build when the translations drift apart: same keys, same {placeholders}, every used key defined.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("../web", import.meta.url));
const LANGUAGES = ["en", "nl", "fr"];
const problems = [];

const catalogues = Object.fromEntries(
  LANGUAGES.map((lang) => [lang, JSON.parse(readFileSync(join(web, "i18n", `${lang}.json`), "utf8"))]),
);

const placeholders = (text) => [...text.matchAll(/\{([a-z_]+)\}/gi)].map((m) => m[1]).sort().join(",");

const reference = catalogues.en;
for (const lang of LANGUAGES) {
  const catalogue = catalogues[lang];
  for (const [key, value] of Object.entries(catalogue)) {
    if (typeof value !== "string" || value.trim() === "") problems.push(`${lang}: ${key} is empty or not a string`);
    if (!(key in reference)) problems.push(`${lang}: ${key} is not in en.json`);
  }
  for (const [key, value] of Object.entries(reference)) {
    if (!(key in catalogue)) problems.push(`${lang}: missing ${key}`);
    else if (placeholders(value) !== placeholders(catalogue[key])) {
      problems.push(`${lang}: ${key} has placeholders {${placeholders(catalogue[key])}}, en has {${placeholders(value)}}`);
    }
  }
}

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (name.endsWith(".ts")) yield path;
  }
}

// Every literal key in the code must exist (directly, or as the .one/.other variants of a plural).
const KEY = /["'`]((?:app|language|common|connection|error|format|login|nav|status|devices|device|account|admin|role|session|support|diag)\.[a-z0-9_.]+)["'`]/g;
for (const path of sources(web)) {
  const text = readFileSync(path, "utf8");
  for (const match of text.matchAll(KEY)) {
    const key = match[1];
    if (key.endsWith(".")) continue;
    if (!(key in reference) && !(`${key}.other` in reference)) {
      problems.push(`${relative(web, path)}: uses undefined key ${key}`);
    }
  }
}

if (problems.length > 0) {
  console.error(`i18n check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`i18n: ${Object.keys(reference).length} keys, identical in ${LANGUAGES.join(", ")}`);
