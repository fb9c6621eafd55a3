import type { ConfigProblem } from "./config/errors.js";
import type { ResolvedHost } from "./resolve.js";

/**
 * `provision lint`: every role's inventory-aware rules for every host, located where the
 * offending param was set. Pure; connects nowhere. The same problem on many hosts is reported
 * once per location, naming the hosts.
 */
export function lintHosts(hosts: readonly ResolvedHost[]): ConfigProblem[] {
  const byLocation = new Map<string, { problem: ConfigProblem; hosts: string[] }>();
  for (const host of hosts) {
    for (const r of host.roles) {
      for (const p of r.role.lint?.(r.params, host.hints) ?? []) {
        const at = r.sources[p.param]!;
        const key = `${at.file}:${at.line}:${at.col}:${p.problem}`;
        const entry = byLocation.get(key);
        if (entry) entry.hosts.push(host.name);
        else
          byLocation.set(key, {
            hosts: [host.name],
            problem: {
              file: at.file,
              line: at.line,
              col: at.col,
              keyPath: at.keyPath,
              severity: p.severity,
              problem: p.problem,
              fix: p.fix,
            },
          });
      }
    }
  }
  return [...byLocation.values()].map(({ problem, hosts: names }) => ({
    ...problem,
    problem: `${problem.problem} (host${names.length === 1 ? "" : "s"} ${abbreviate(names)})`,
  }));
}

function abbreviate(names: string[]): string {
  return names.length <= 5 ? names.join(", ") : `${names.slice(0, 5).join(", ")} and ${names.length - 5} more`;
}
