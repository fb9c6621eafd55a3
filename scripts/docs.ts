import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT } from "../src/installRoot.js";
import { renderReference } from "../src/reference.js";
import { ROLES } from "../src/roles.js";

/** `npm run docs`: regenerates docs/roles.md from the role schemas. */
const file = join(PROJECT_ROOT, "docs", "roles.md");
writeFileSync(file, renderReference(ROLES));
process.stdout.write(`wrote ${file}\n`);
