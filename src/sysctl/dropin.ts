import { probeCheck, type Change, type Check, type Facts, type RolePlan } from "../role.js";
import { normalizeSysctlValue, sysctlEqual } from "./value.js";
import { planManagedFile } from "../managedFile.js";
import { parseLine, sysctlBootProbe } from "../facts/sysctlBoot.js";

export const SYSCTL_DROPIN_DIR = "/etc/sysctl.d";

/** `/etc/sysctl.d/60-provision-<role>.conf`: one whole file per role, never a line edit of a shared file. */
export function sysctlDropinPath(role: string): string {
  return `${SYSCTL_DROPIN_DIR}/60-provision-${role}.conf`;
}

export interface SysctlDropinPlan {
  role: string;
  /** Rendered file content (the persisted truth for boot). */
  content: string;
  /** key → desired value, in file order. */
  desired: ReadonlyArray<readonly [key: string, value: string]>;
  facts: Facts;
}

/**
 * The common plan of a sysctl role: write the drop-in when its bytes differ, set each live value
 * that differs, and check both back. Idempotent because a second plan sees `before === after`.
 */
export function planSysctlDropin(p: SysctlDropinPlan): RolePlan {
  const path = sysctlDropinPath(p.role);
  const file = planManagedFile({ path, content: p.content, role: p.role }, p.facts);
  const changes: Change[] = [...file.changes];
  const checks: Check[] = [];
  for (const [key, value] of p.desired) {
    const live = p.facts.sysctl[key] ?? null;
    if (!sysctlEqual(live, value)) {
      changes.push({
        kind: "sysctl",
        key,
        before: live === null ? null : normalizeSysctlValue(live),
        after: value,
        description: `set ${key} live`,
      });
    }
    checks.push({
      kind: "sysctl",
      key,
      expected: value,
      message: `${key} is not ${value} on the running kernel: something changed it after provision, or another sysctl file won at boot`,
    });
  }
  checks.push(
    ...file.checks,
    ...bootTruthChecks(
      path,
      p.content,
      p.desired.map(([key]) => key),
    ),
  );
  return { changes, checks, notes: [], refusals: [] };
}

/**
 * For each key our file sets: at boot, our line must be the one that wins across every sysctl.d
 * directory and /etc/sysctl.conf. Another file that sets the key later would silently undo us at
 * the next reboot, so verify fails naming that file and line.
 */
export function bootTruthChecks(path: string, content: string, keys: readonly string[]): Check[] {
  const lines = content.split("\n");
  return keys.flatMap((key): Check[] => {
    const index = lines.findLastIndex((l) => parseLine(l)?.key === key);
    if (index === -1) return [];
    return [
      probeCheck(sysctlBootProbe, {
        field: [key],
        compare: "equal",
        expected: `${path}:${index + 1}`,
        label: `at boot: ${key}`,
        message: `another sysctl file sets ${key} after ours, so it wins at boot and undoes this value at the next reboot: remove the key from that file, or rename it to sort before ${path.split("/").pop()}`,
      }),
    ];
  });
}
