import type { Change, Check, Facts, RolePlan } from "../role.js";
import { normalizeSysctlValue, sysctlEqual } from "./value.js";
import { planManagedFile } from "../managedFile.js";

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
        kind: "sysctl", key, before: live === null ? null : normalizeSysctlValue(live), after: value,
        description: `set ${key} live`,
      });
    }
    checks.push({
      kind: "sysctl", key, expected: value,
      message: `${key} is not ${value} on the running kernel: something changed it after provision, or another sysctl file won at boot`,
    });
  }
  checks.push(...file.checks);
  return { changes, checks, notes: [] };
}
