import { resolve as resolvePath } from "node:path";
import { sortProblems, type ConfigProblem } from "./config/errors.js";
import { loadInventory } from "./inventory/load.js";
import { loadPlaybook } from "./playbook.js";
import { resolveTargets, type ResolvedHost } from "./resolve.js";
import { rolloutPolicy, type RolloutFlags } from "./rollout/fromConfig.js";
import type { RolloutPolicy } from "./rollout/policy.js";

export interface LoadedConfig {
  hosts: ResolvedHost[];
  problems: ConfigProblem[];
  policy: RolloutPolicy;
}

/** load → validate → resolve, collecting every problem of every file before anything connects. */
export function loadConfig(inventoryFile: string, playbookFile: string, limit: string | undefined, rolloutFlags: RolloutFlags = {}): LoadedConfig {
  const problems: ConfigProblem[] = [];
  const inventory = loadInventory(resolvePath(inventoryFile), problems);
  const plays = loadPlaybook(resolvePath(playbookFile), problems);
  const policy = rolloutPolicy(plays ?? [], rolloutFlags, problems);
  if (!inventory || !plays) return { hosts: [], problems: sortProblems(problems), policy };
  const hosts = resolveTargets(inventory, plays, limit, problems);
  return { hosts, problems: sortProblems(problems), policy };
}

export function hasErrors(problems: ConfigProblem[]): boolean {
  return problems.some((p) => p.severity === "error");
}
