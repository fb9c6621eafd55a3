import { bootWinners, SYSCTL_CONF, SYSCTL_DIRS, sysctlBootProbe } from "../../src/facts/sysctlBoot.js";
import type { HostPlan } from "../../src/plan.js";
import type { AnyRole, Facts } from "../../src/role.js";
import type { ResolvedHost } from "../../src/resolve.js";

/** A role's params: its schema defaults with `over` on top, as resolve would merge them. */
export function paramsOf(role: AnyRole, over: Record<string, unknown> = {}): Record<string, unknown> {
  const defaults = Object.fromEntries(
    Object.entries(role.schema.properties).map(([k, s]) => [k, structuredClone(s.default)]),
  );
  return { ...defaults, ...over };
}

export function hostWith(name: string, roles: Array<[AnyRole, Record<string, unknown>?]>): ResolvedHost {
  return {
    name,
    connection: {
      kind: "ssh",
      host: name,
      port: 22,
      user: "root",
      privateKeyFile: undefined,
      sshArgs: [],
      openSshOnlyOptions: [],
    },
    become: true,
    roles: roles.map(([role, over]) => ({ role, params: paramsOf(role, over), sources: {} })),
    hints: { listenPorts: [], memTotalMb: null },
    groups: ["all"],
  };
}

/** A host with no roles, reached as root over SSH, in `all` and these groups. */
export function bareHost(name: string, ...groups: string[]): ResolvedHost {
  return { ...hostWith(name, []), become: false, groups: ["all", ...groups] };
}

export function facts(over: Partial<Facts> = {}): Facts {
  return { sysctl: {}, files: {}, listeningPorts: { tcp: [], udp: [] }, ...over };
}

/** Every `key = value` line of a rendered sysctl file must follow a comment line. */
export function settingsWithoutComment(content: string): string[] {
  const lines = content.split("\n");
  return lines.filter((line, i) => /^[a-z0-9_.-]+ = /.test(line) && !(lines[i - 1] ?? "").startsWith("#"));
}

export function settings(content: string): Array<[string, string]> {
  return content
    .split("\n")
    .filter((l) => /^[a-z0-9_.-]+ = /.test(l))
    .map((l) => {
      const [k, v] = l.split(" = ");
      return [k!, v!];
    });
}

export function fileOf(p: HostPlan): string {
  const c = p.changes.find((x) => x.kind === "file");
  if (!c || c.kind !== "file") throw new Error("no file change");
  return c.after;
}

/** What the host looks like after the plan was applied: the file written and every live value set. */
export function factsAfter(p: HostPlan, before: Facts): Facts {
  const after: Facts = structuredClone(before);
  for (const c of p.changes) {
    if (c.kind === "file") after.files[c.path] = c.after;
    // the kernel reads multi-value sysctls back with tabs
    else if (c.kind === "sysctl") after.sysctl[c.key] = c.after.replace(/ /g, "\t");
  }
  return withBootTruth(after);
}

/** What the sysctl-boot probe would read from the host's files: the winning file and line of every key. */
export function withBootTruth(facts: Facts): Facts {
  const files = Object.entries(facts.files)
    .filter(
      (e): e is [string, string] =>
        e[1] !== null && (SYSCTL_DIRS.some((d) => e[0].startsWith(`${d}/`)) || e[0] === SYSCTL_CONF),
    )
    .map(([path, content]) => ({ path, content }));
  return { ...facts, probes: { ...facts.probes, [sysctlBootProbe.name]: { ok: true, value: bootWinners(files) } } };
}

/** Checks minus the "which file wins at boot" ones, which test/unit/sysctlBoot.test.ts covers for every role. */
export function withoutBootChecks<C extends { kind: string; label?: string }>(checks: C[]): C[] {
  return checks.filter((c) => !(c.kind === "probe" && c.label?.startsWith("at boot: ")));
}
