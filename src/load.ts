import { resolve as resolvePath } from "node:path";
import { sortProblems, type ConfigProblem } from "./config/errors.js";
import { loadInventory } from "./inventory/load.js";
import { loadPlaybook } from "./playbook.js";
import { resolveTargets, type ResolvedHost } from "./resolve.js";

export interface LoadedConfig {
  hosts: ResolvedHost[];
  problems: ConfigProblem[];
}

/** load → validate → resolve, collecting every problem of every file before anything connects. */
export function loadConfig(inventoryFile: string, playbookFile: string, limit: string | undefined): LoadedConfig {
  const problems: ConfigProblem[] = [];
  const inventory = loadInventory(resolvePath(inventoryFile), problems);
  const plays = loadPlaybook(resolvePath(playbookFile), problems);
  if (!inventory || !plays) return { hosts: [], problems: sortProblems(problems) };
  const hosts = resolveTargets(inventory, plays, limit, problems);
  return { hosts, problems: sortProblems(problems) };
}

export function hasErrors(problems: ConfigProblem[]): boolean {
  return problems.some((p) => p.severity === "error");
}
