import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where provision is installed: the root that holds templates/, playbooks/ and the capacity helper,
 * found once from this file whether it runs from src/ or dist/src/.
 */
export const PROJECT_ROOT: string = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(start: string): string {
  let dir = start;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "templates")) && existsSync(join(dir, "package.json"))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`provision: cannot find the project root (templates/ and package.json) above ${start}`);
}

export const TEMPLATES_DIR = join(PROJECT_ROOT, "templates");
export const DEFAULT_PLAYBOOK = join(PROJECT_ROOT, "playbooks", "site.yaml");
/** The capacity probe's Python helper, read from the source tree at run time (tsc does not copy .py files into dist/). */
export const CAPACITY_HELPER_FILE = join(PROJECT_ROOT, "src", "capacity", "helper.py");
/** The installed package's version, as `provision --version` prints it. */
export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as { version: string }
).version;
