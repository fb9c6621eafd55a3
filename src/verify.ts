import { probeKey, type FactRequest, type Facts } from "./role.js";
import type { AnyProbe } from "./facts/probe.js";
import type { PlannedCheck } from "./plan.js";
import { sysctlEqual } from "./sysctl/value.js";

export interface CheckResult {
  check: PlannedCheck;
  actual: string | null;
  ok: boolean;
}

/**
 * What reading these checks back costs. A probe check names its probe; `probes` are the ones the
 * host's roles asked for (see probesOf), so a check can only name a probe its role gathers.
 */
export function factRequestsForChecks(checks: PlannedCheck[], probes: ReadonlyMap<string, AnyProbe>): FactRequest[] {
  return checks.map((c): FactRequest => {
    switch (c.kind) {
      case "sysctl":
        return { kind: "sysctl", key: c.key };
      case "file":
        return { kind: "file", path: c.path };
      case "probe": {
        const probe = probes.get(c.probe);
        if (!probe) throw new Error(`role ${c.role} checks probe ${c.probe}, which none of the host's roles gathers`);
        return c.arg === undefined ? { kind: "probe", probe } : { kind: "probe", probe, arg: c.arg };
      }
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
      // A match keeps the plan's copy of the content, shared by every host with that plan, not this host's.
      return actual === check.expected ? { check, actual: check.expected, ok: true } : { check, actual, ok: false };
    }
    const result = facts.probes?.[probeKey(check.probe, check.arg)];
    if (!result) return { check, actual: null, ok: false };
    if (!result.ok) return { check, actual: `(unreadable: ${result.error})`, ok: false };
    const at = fieldAt(result.value, check.field);
    const actual = textOf(at);
    if (actual === null) return { check, actual, ok: false };
    const ok =
      check.compare === "includes" || check.compare === "excludes"
        ? (check.compare === "includes") === listOf(at).includes(check.expected.trim())
        : compareValues(check.compare, actual, check.expected);
    return { check, actual, ok };
  });
}

/** The value at `path` in a probe's typed answer; undefined when the path leads nowhere. */
export function fieldAt(value: unknown, path: readonly string[]): unknown {
  let at: unknown = value;
  for (const key of path) {
    if (at === null || typeof at !== "object" || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/** How a field's value reads in reports: numbers and booleans as JS prints them, lists comma-joined. */
function textOf(at: unknown): string | null {
  if (Array.isArray(at)) return at.map(String).join(", ");
  if (typeof at === "string" || typeof at === "number" || typeof at === "boolean") return String(at);
  return null;
}

/** A list field's members; a text field is one member. */
function listOf(at: unknown): string[] {
  return Array.isArray(at) ? at.map((v) => String(v).trim()) : [String(at).trim()];
}

/** Integers compare numerically, with "unlimited"/"infinity" above every number. */
export function compareValues(compare: "equal" | "at-least" | "at-most", actual: string, expected: string): boolean {
  switch (compare) {
    case "equal":
      return sysctlEqual(actual, expected);
    case "at-least":
      return toNumber(actual) >= toNumber(expected);
    case "at-most":
      return toNumber(actual) <= toNumber(expected);
  }
}

function toNumber(v: string): number {
  const t = v.trim().toLowerCase();
  if (t === "unlimited" || t === "infinity") return Infinity;
  return /^-?\d+$/.test(t) ? Number(t) : NaN;
}
