import { dirname, resolve as resolvePath } from "node:path";
import { sortProblems, type ConfigProblem } from "./config/errors.js";
import { loadInventory } from "./inventory/load.js";
import { loadPlaybook } from "./playbook.js";
import { DEFAULT_PLAYBOOK } from "./installRoot.js";
import { resolveTargets, type ResolvedHost } from "./resolve.js";
import { rolloutPolicy, type RolloutFlags } from "./rollout/fromConfig.js";
import type { RolloutPolicy } from "./rollout/policy.js";

export interface LoadedConfig {
  hosts: ResolvedHost[];
  problems: ConfigProblem[];
  policy: RolloutPolicy;
}

/** load → validate → resolve, collecting every problem of every file before anything connects. */
export function loadConfig(
  inventorySources: string | string[],
  playbookFile: string,
  limit: string | undefined,
  rolloutFlags: RolloutFlags = {},
  readStdin?: () => string,
): LoadedConfig {
  const problems: ConfigProblem[] = [];
  const playbook = resolvePath(playbookFile);
  // group_vars/ beside the user's playbook count, as in Ansible; the bundled playbook has none.
  const playbookDir = playbook === DEFAULT_PLAYBOOK ? undefined : dirname(playbook);
  const inventory = loadInventory(inventorySources, problems, { playbookDir, readStdin });
  const plays = loadPlaybook(playbook, problems);
  const policy = rolloutPolicy(plays ?? [], rolloutFlags, problems);
  if (!inventory || !plays) return { hosts: [], problems: sortProblems(problems), policy };
  const hosts = resolveTargets(inventory, plays, limit, problems);
  // Resolving despite errors reports more problems in the same run; hosts are only handed out when there are none.
  return { hosts: hasErrors(problems) ? [] : hosts, problems: sortProblems(problems), policy };
}

export function hasErrors(problems: ConfigProblem[]): boolean {
  return problems.some((p) => p.severity === "error");
}
