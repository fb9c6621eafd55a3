import type { ConfigProblem } from "./config/errors.js";
import { PLAYBOOK_SCHEMA } from "./config/schemas.js";
import { closest } from "./config/suggest.js";
import { validateAgainstSchema } from "./config/validate.js";
import { formatKeyPath, loadYamlFile, type KeyPath, type YamlFile } from "./config/yamlFile.js";
import type { AnyRole } from "./role.js";
import { findRole, ROLES } from "./roles.js";

export interface PlayRole {
  role: AnyRole;
  params: Record<string, unknown>;
  /** Where this role entry is, for locating params and defaults in errors. */
  path: KeyPath;
}

export interface RawRollout {
  batches?: Array<number | string>;
  max_fail_per_batch?: number | string;
  max_fail_total?: number | string;
  pause?: number | "prompt";
  allow_plan_drift?: boolean;
}

export interface Play {
  name: string;
  hosts: string;
  become: boolean | undefined;
  rollout: RawRollout | undefined;
  roles: PlayRole[];
  index: number;
  source: YamlFile;
}

interface RawPlay {
  name?: string;
  hosts: string;
  become?: boolean;
  rollout?: RawRollout;
  roles: Array<string | { role: string; params?: Record<string, unknown> | null }>;
}

export function loadPlaybook(file: string, problems: ConfigProblem[]): Play[] | null {
  const yaml = loadYamlFile(file, problems);
  if (!yaml) return null;
  const valid = validateAgainstSchema(PLAYBOOK_SCHEMA, yaml.data, yaml, [], problems);
  const plays: Play[] = [];
  // Role params are checked even when the play's shape has errors, so one run reports everything.
  (Array.isArray(yaml.data) ? (yaml.data as RawPlay[]) : []).forEach((raw, index) => {
    const roles: PlayRole[] = [];
    const entries = raw && typeof raw === "object" && Array.isArray(raw.roles) ? raw.roles : [];
    entries.forEach((entry, j) => {
      const name = typeof entry === "string" ? entry : entry && typeof entry === "object" ? entry.role : undefined;
      if (typeof name !== "string") return;
      const path: KeyPath = typeof entry === "string" ? [index, "roles", j] : [index, "roles", j, "role"];
      const role = findRole(name);
      if (!role) {
        const guess = closest(
          name,
          ROLES.map((r) => r.name),
        );
        problems.push({
          file,
          ...yaml.locate(path),
          keyPath: formatKeyPath(path),
          severity: "error",
          problem: `unknown role "${name}"`,
          fix: guess ? `did you mean "${guess}"?` : `use one of: ${ROLES.map((r) => r.name).join(", ")}`,
        });
        return;
      }
      const params = typeof entry === "string" ? {} : (entry.params ?? {});
      if (typeof params !== "object" || Array.isArray(params)) return;
      const paramsPath: KeyPath = [index, "roles", j, "params"];
      if (!validateAgainstSchema(role.schema, params, yaml, paramsPath, problems)) return;
      roles.push({ role, params, path: typeof entry === "string" ? path : [index, "roles", j] });
    });
    plays.push({
      name: raw.name ?? `play ${index + 1}`,
      hosts: raw.hosts,
      become: raw.become,
      rollout: raw.rollout,
      roles,
      index,
      source: yaml,
    });
  });
  return valid ? plays : null;
}
