// Fails the build if console code uses an HTML-parsing sink: agent data must only ever become text nodes.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("../web", import.meta.url));
const SINKS = [
  /\.innerHTML\b/,
  /\.outerHTML\b/,
  /\binsertAdjacentHTML\b/,
  /\bdocument\.write(ln)?\b/,
  /\bcreateContextualFragment\b/,
  /\bsetHTMLUnsafe\b/,
  /\bparseHTMLUnsafe\b/,
  /\bDOMParser\b/,
  /\beval\s*\(/,
  /\bnew Function\b/,
];

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (/\.(ts|html)$/.test(name)) yield path;
  }
}

const problems = [];
for (const path of sources(web)) {
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((line, index) => {
      // Comments may name the sinks (to say they are not used); code may not.
      if (/^\s*(\/\/|\*|\/\*)/.test(line)) return;
      for (const sink of SINKS) {
        if (sink.test(line)) problems.push(`${relative(web, path)}:${index + 1}: ${line.trim()}`);
      }
    });
}
if (problems.length > 0) {
  console.error(`HTML sinks are not allowed in the console:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log("sinks: no HTML-parsing sinks in web/");
