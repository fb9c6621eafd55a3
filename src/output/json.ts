import type { HostReport } from "../report.js";
import { changeTarget, checkTarget } from "../plan.js";

/** `--json`: the same reports as the text output, as data. A plan's changes are exactly what run executes. */
export function toJson(
  command: "plan" | "run" | "verify" | "rollback",
  reports: HostReport[],
  extra: Record<string, unknown> = {},
): string {
  const count = (s: string) => reports.filter((r) => r.status === s).length;
  return JSON.stringify(
    {
      command,
      ...extra,
      summary: {
        hosts: reports.length,
        changed: count("changed"),
        unchanged: count("unchanged"),
        failed: count("failed"),
        unreachable: count("unreachable"),
        notReached: count("not-reached"),
        changes: reports.reduce((n, r) => n + (r.plan?.changes.length ?? 0), 0),
      },
      hosts: reports.map((r) => ({
        host: r.host,
        status: r.status,
        ...(r.error ? { error: r.error } : {}),
        ...(r.plan ? { changes: r.plan.changes, notes: r.plan.notes } : {}),
        ...(r.outcomes
          ? {
              applied: r.outcomes.map((o) => ({
                role: o.change.role,
                kind: o.change.kind,
                target: changeTarget(o.change),
                ok: o.ok,
                ...(o.error ? { error: o.error } : {}),
              })),
            }
          : {}),
        ...(r.checks
          ? {
              checks: r.checks.map((c) => ({
                role: c.check.role,
                kind: c.check.kind,
                target: checkTarget(c.check),
                ok: c.ok,
                expected: c.check.kind === "file" ? undefined : c.check.expected,
                actual: c.check.kind === "file" ? undefined : c.actual,
                ...(c.ok ? {} : { message: c.check.message }),
              })),
            }
          : {}),
      })),
    },
    null,
    2,
  );
}
