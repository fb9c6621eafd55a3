import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (holds templates/ and playbooks/), found from this file whether run from src/ or dist/src/. */
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

/** Like Ansible, a project's own `playbooks/site.yaml` (relative to where you run) wins over the bundled one. */
export function defaultPlaybook(cwd: string = process.cwd()): string {
  const local = join(cwd, "playbooks", "site.yaml");
  return existsSync(local) ? local : DEFAULT_PLAYBOOK;
}
