import type { FactRequest, Facts } from "./role.js";
import type { PlannedCheck } from "./plan.js";
import { sysctlEqual } from "./sysctl/value.js";

export interface CheckResult {
  check: PlannedCheck;
  actual: string | null;
  ok: boolean;
}

export function factRequestsForChecks(checks: PlannedCheck[]): FactRequest[] {
  return checks.map((c) => (c.kind === "sysctl" ? { kind: "sysctl", key: c.key } : { kind: "file", path: c.path }));
}

/** Pure: compares what was read back with what was expected. Sysctl values compare by words, files byte for byte. */
export function evaluateChecks(checks: PlannedCheck[], facts: Facts): CheckResult[] {
  return checks.map((check) => {
    if (check.kind === "sysctl") {
      const actual = facts.sysctl[check.key] ?? null;
      return { check, actual, ok: sysctlEqual(actual, check.expected) };
    }
    const actual = facts.files[check.path] ?? null;
    return { check, actual, ok: actual === check.expected };
  });
}
