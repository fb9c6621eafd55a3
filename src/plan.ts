import {
  refused,
  type Change,
  type Check,
  type FactRequest,
  type Facts,
  type PlanContext,
  type RolePlan,
} from "./role.js";
import type { AnyProbe } from "./facts/probe.js";
import { sysctlBootProbe } from "./facts/sysctlBoot.js";
import { SYSCTL_DROPIN_DIR } from "./sysctl/dropin.js";
import { renderTemplate } from "./render.js";
import { shJoin } from "./transport/shell.js";
import type { ResolvedHost, ResolvedRole } from "./resolve.js";

export type PlannedChange = Change & { role: string };
export type PlannedCheck = Check & { role: string };

/** Everything `run` would do to one host, as plain data: `plan --json` prints exactly this. */
export interface HostPlan {
  host: string;
  changes: PlannedChange[];
  checks: PlannedCheck[];
  notes: Array<{ role: string; text: string }>;
  /** Every reason a role refused, and every error a role hit while planning: all of them at once. */
  refusals: Array<{ role: string; text: string }>;
}

export function factRequestsFor(host: ResolvedHost): FactRequest[] {
  const requests = host.roles.flatMap((r) => r.role.facts(r.params));
  // A role that reads live sysctls or its sysctl.d drop-in writes that drop-in, whose checks read
  // which file wins at boot: read that with the facts, or run and verify would each cost a second
  // round trip per host (and verify may only check probes gathered here).
  const writesDropin = requests.some(
    (r) => r.kind === "sysctl" || (r.kind === "file" && r.path.startsWith(`${SYSCTL_DROPIN_DIR}/`)),
  );
  if (writesDropin) requests.push({ kind: "probe", probe: sysctlBootProbe });
  return requests;
}

/** The probes a host's roles gather, by name: the only ones its checks may name. */
export function probesOf(host: ResolvedHost): Map<string, AnyProbe> {
  const probes = new Map<string, AnyProbe>();
  for (const r of factRequestsFor(host)) {
    if (r.kind !== "probe") continue;
    const same = probes.get(r.probe.name);
    if (same && same !== r.probe) throw new Error(`two different probes are named ${r.probe.name}`);
    probes.set(r.probe.name, r.probe);
  }
  return probes;
}

export function whyOf(r: ResolvedRole): Record<string, string> {
  return Object.fromEntries(Object.entries(r.role.schema.properties).map(([k, s]) => [k, s.description]));
}

/** Pure: the same host, params and facts always give the same plan. */
export function planHost(
  host: ResolvedHost,
  facts: Facts,
  purpose: PlanContext["purpose"] = "plan",
  sshAddress: string = host.connection.host,
): HostPlan {
  const plan: HostPlan = { host: host.name, changes: [], checks: [], notes: [], refusals: [] };
  for (const r of host.roles) {
    const why = whyOf(r);
    const ctx: PlanContext = {
      hostName: host.name,
      sshAddress,
      purpose,
      why,
      // Every template explains its values, so every render gets the params' reasons.
      render: (template, data = {}) => renderTemplate(r.role.name, template, { why, ...data }),
    };
    let rolePlan: RolePlan;
    try {
      rolePlan = r.role.plan(r.params, facts, ctx);
    } catch (err) {
      // A fact the role could not read (a probe's error) ends this role's plan, not the host's.
      rolePlan = refused([err instanceof Error ? err.message : String(err)]);
    }
    plan.refusals.push(...rolePlan.refusals.map((text) => ({ role: r.role.name, text })));
    if (rolePlan.refusals.length > 0) continue;
    plan.changes.push(...rolePlan.changes.map((c) => ({ ...c, role: r.role.name })));
    plan.checks.push(...rolePlan.checks.map((c) => ({ ...c, role: r.role.name })));
    plan.notes.push(...rolePlan.notes.map((text) => ({ role: r.role.name, text })));
  }
  return plan;
}

/** How a change or check is named in reports: a path, a sysctl key, a command line, or a probe label. */
export function changeTarget(c: Change): string {
  switch (c.kind) {
    case "file":
      return c.path;
    case "sysctl":
      return c.key;
    case "command":
      return shJoin(c.argv);
  }
}

export function checkTarget(c: Check): string {
  switch (c.kind) {
    case "file":
      return c.path;
    case "sysctl":
      return c.key;
    case "probe":
      return c.label;
  }
}
