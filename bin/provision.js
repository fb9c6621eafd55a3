#!/usr/bin/env node
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/src/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write("provision: not built yet. Run `npm ci` (or `npm run build`) in the project directory.\n");
  process.exit(1);
}
await import(entry.href);
