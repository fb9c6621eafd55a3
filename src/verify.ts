import { probeKey, type FactRequest, type Facts } from "./role.js";
import type { PlannedCheck } from "./plan.js";
import { sysctlEqual } from "./sysctl/value.js";

export interface CheckResult {
  check: PlannedCheck;
  actual: string | null;
  ok: boolean;
}

export function factRequestsForChecks(checks: PlannedCheck[]): FactRequest[] {
  return checks.map((c): FactRequest => {
    switch (c.kind) {
      case "sysctl":
        return { kind: "sysctl", key: c.key };
      case "file":
        return { kind: "file", path: c.path };
      case "probe":
        return c.arg === undefined ? { kind: "probe", probe: c.probe } : { kind: "probe", probe: c.probe, arg: c.arg };
    }
  });
}

/** Pure: compares what was read back with what was expected. Sysctl values compare by words, files byte for byte. */
export function evaluateChecks(checks: PlannedCheck[], facts: Facts): CheckResult[] {
  return checks.map((check) => {
    if (check.kind === "sysctl") {
      const actual = facts.sysctl[check.key] ?? null;
      return { check, actual, ok: sysctlEqual(actual, check.expected) };
    }
    if (check.kind === "file") {
      const actual = facts.files[check.path] ?? null;
      return { check, actual, ok: actual === check.expected };
    }
    const result = facts.probes?.[probeKey(check.probe, check.arg)];
    if (!result) return { check, actual: null, ok: false };
    if (!result.ok) return { check, actual: `(unreadable: ${result.error})`, ok: false };
    const actual = result.fields[check.field] ?? null;
    return { check, actual, ok: actual !== null && compareValues(check.compare, actual, check.expected) };
  });
}

/** Integers compare numerically, with "unlimited"/"infinity" above every number. */
export function compareValues(compare: "equal" | "at-least" | "at-most" | "includes" | "excludes", actual: string, expected: string): boolean {
  switch (compare) {
    case "equal":
      return sysctlEqual(actual, expected);
    case "at-least":
      return toNumber(actual) >= toNumber(expected);
    case "at-most":
      return toNumber(actual) <= toNumber(expected);
    case "includes":
      return listOf(actual).includes(expected.trim());
    case "excludes":
      return !listOf(actual).includes(expected.trim());
  }
}

function toNumber(v: string): number {
  const t = v.trim().toLowerCase();
  if (t === "unlimited" || t === "infinity") return Infinity;
  return /^-?\d+$/.test(t) ? Number(t) : NaN;
}

function listOf(v: string): string[] {
  return v.split(",").map((s) => s.trim()).filter(Boolean);
}
