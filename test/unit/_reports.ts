import type { HostReport } from "../../src/report.js";
import type { ResolvedHost } from "../../src/resolve.js";
import type { Session } from "../../src/session.js";
import type { PlannedChange } from "../../src/plan.js";

export const FILE: PlannedChange = {
  kind: "file",
  path: "/etc/sysctl.d/60-provision-tw-reuse.conf",
  before: null,
  after: "# why\nnet.ipv4.tcp_tw_reuse = 1\n",
  mode: "0644",
  owner: "root",
  group: "root",
  description: "create /etc/sysctl.d/60-provision-tw-reuse.conf",
  role: "tw-reuse",
};
export const REUSE: PlannedChange = {
  kind: "sysctl",
  key: "net.ipv4.tcp_tw_reuse",
  before: "2",
  after: "1",
  description: "set net.ipv4.tcp_tw_reuse live",
  role: "tw-reuse",
};
export const RANGE: PlannedChange = {
  kind: "sysctl",
  key: "net.ipv4.ip_local_port_range",
  before: null,
  after: "1024 65535",
  description: "set net.ipv4.ip_local_port_range live",
  role: "ephemeral-ports",
};

export function changed(
  host: string,
  changes: PlannedChange[],
  notes: Array<{ role: string; text: string }> = [],
): HostReport {
  return {
    host,
    status: changes.length > 0 ? "changed" : "unchanged",
    plan: { host, changes, checks: [], notes, refusals: [] },
  };
}

export function failed(host: string, status: "failed" | "unreachable", message: string): HostReport {
  return { host, status, error: { kind: status === "unreachable" ? "unreachable" : "command", message } };
}

/** A session whose plan and apply outcomes are scripted per host; it records what it was asked. */
export function fakeSession(opts: { failing?: string[]; unreachable?: string[]; drifted?: string[] } = {}) {
  const calls: string[] = [];
  const session = {
    async plan(hosts: ResolvedHost[]): Promise<HostReport[]> {
      calls.push(`plan ${hosts.map((h) => h.name).join(",")}`);
      return hosts.map((h) => {
        if (opts.unreachable?.includes(h.name))
          return { host: h.name, status: "unreachable", error: { kind: "unreachable", message: "connection refused" } };
        return opts.drifted?.includes(h.name)
          ? changed(h.name, [{ ...REUSE, before: "0" } as typeof REUSE])
          : changed(h.name, [REUSE]);
      });
    },
    async apply(hosts: ResolvedHost[], planned: HostReport[]): Promise<HostReport[]> {
      calls.push(`apply ${planned.map((r) => r.host).join(",")}`);
      return planned.map((r) =>
        opts.failing?.includes(r.host)
          ? { ...r, status: "failed", error: { kind: "apply", message: "boom" } }
          : { ...r, outcomes: [], checks: [] },
      );
    },
  };
  return { session: session as unknown as Session, calls };
}
