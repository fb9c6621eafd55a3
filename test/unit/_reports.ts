import type { HostReport } from "../../src/report.js";
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
