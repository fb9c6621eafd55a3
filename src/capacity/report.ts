import { plural, thousands } from "../output/words.js";
import { countOrUnknown, portsPerSource, rangeSize, type Diagnosis, type Outcome } from "./diagnose.js";
import type { ClientFacts, ServerFacts } from "./facts.js";
import type { CleanupResult } from "./remote.js";
import type { Spread } from "./spread.js";

export interface CapacityReport {
  client: { host: string; facts: ClientFacts; spread: Spread; sources: string[] };
  server: { host: string; address: string; port: number; facts: ServerFacts; spread: Spread };
  bound: number;
  outcome: Outcome;
  diagnosis: Diagnosis;
  cleanup: { client: CleanupResult; server: CleanupResult; ok: boolean };
  /** In the helpers' argv (plus -client or -server), for `pgrep -f`. */
  marker: string;
  elapsedSeconds: number;
}

export function cleanupOk(c: CleanupResult): boolean {
  return c.left === 0 && (c.sockets ?? 0) === 0;
}

export function capacityJson(r: CapacityReport): string {
  return JSON.stringify({ command: "probe", ...r }, null, 2);
}

function heldLine(o: Outcome): string {
  const counted =
    o.establishedAtHoldStart === null
      ? ""
      : `; ESTABLISHED in the kernel's table: ${thousands(o.establishedAtHoldStart)} at the start of the ${o.holdSeconds} s hold, ${thousands(o.establishedAtHoldEnd ?? 0)} at its end`;
  return `held ${thousands(o.held)} concurrent connections (opened in ${o.rampSeconds.toFixed(1)} s${counted}; the server accepted ${thousands(o.accepted)})`;
}

function perSourceLine(o: Outcome): string {
  const parts = o.perSource.map((p) => `${p.source} ${thousands(p.held)}${p.stop ? ` (${p.stop})` : ""}`);
  return `per source IP: ${parts.join(", ")}`;
}

function clientSettings({ host, facts: c, sources }: CapacityReport["client"]): string {
  const reserved =
    c.reservedPorts === "" ? "(none)" : `${c.reservedPorts} (${thousands(c.reservedInRange)} in the range)`;
  return (
    `${host} (client): ip_local_port_range ${c.portRange.text} (${thousands(rangeSize(c))} ports${c.reservedInRange > 0 ? `, ${thousands(portsPerSource(c))} free of reservations` : ""}); ` +
    `ip_local_reserved_ports ${reserved}; source IPs on ${c.interface}: ${sources.length} (${sources.join(", ")}); ` +
    `nofile soft ${c.nofileSoft} / hard ${c.nofileHard}; fs.nr_open ${countOrUnknown(c.nrOpen)}; fs.file-max ${countOrUnknown(c.fileMax)}`
  );
}

function serverSettings({ host, facts: s, spread }: CapacityReport["server"]): string {
  return (
    `${host} (server): somaxconn ${countOrUnknown(s.somaxconn)} (= the backlog of each of its ${plural(spread.processes, "listener")}); ` +
    `tcp_max_syn_backlog ${countOrUnknown(s.maxSynBacklog)}; tcp_syncookies ${s.syncookies || "?"}; ` +
    `tcp_abort_on_overflow ${s.abortOnOverflow || "?"}; nofile soft ${s.nofileSoft} / hard ${s.nofileHard}`
  );
}

/** How the probe worked around the per-process fd limit. */
export function spreadLine(clientHost: string, client: Spread, serverHost: string, server: Spread): string {
  const clientPart =
    client.processes > 1
      ? `spread over ${client.processes} client processes of ≤ ${thousands(Math.max(...client.targets))} sockets each because the hard nofile limit here is ${thousands(client.hardNofile)} (${clientHost})`
      : `1 client process (${clientHost}'s hard nofile ${thousands(client.hardNofile)} holds the bound)`;
  const capped = client.capped
    ? `; the bound needs more than ${client.processes} processes of ${thousands(client.perProcess)}, so the processes will meet their fd limit first`
    : "";
  const serverPart = `${plural(server.processes, "server process")} accepting on one port with SO_REUSEPORT (${serverHost}: hard nofile ${thousands(server.hardNofile)})`;
  return `${clientPart}${capped}; ${serverPart}`;
}

function cleanupLine(r: CapacityReport): string {
  const c = r.cleanup;
  const port = r.server.port;
  if (c.ok && c.client.found === 0 && c.server.found === 0) {
    return `cleanup: no helper process (pgrep -f ${r.marker}) and no socket on port ${port} left on ${r.client.host} or ${r.server.host}`;
  }
  const side = (host: string, x: CleanupResult) =>
    `${host}: ${plural(x.found, "helper process")} still running${x.found > 0 ? " (killed)" : ""}, ${plural(x.left, "process")} left, ${x.sockets === null ? "sockets unknown (no ss)" : plural(x.sockets, "socket")} on port ${port}`;
  return `cleanup${c.ok ? "" : " FAILED"}: ${side(r.client.host, c.client)}; ${side(r.server.host, c.server)}`;
}

export function renderCapacityText(r: CapacityReport): string {
  const d = r.diagnosis;
  const lines = [
    `Capacity probe: ${r.client.host} → ${r.server.host} ${r.server.address}:${r.server.port}, up to ${thousands(r.bound)} concurrent connections`,
    `  ${heldLine(r.outcome)}`,
    `  ${perSourceLine(r.outcome)}`,
    `stopped by: ${d.wall}`,
    ...d.why.map((w) => `  why: ${w}`),
    ...d.fix.map((f, i) => `  ${i === 0 ? "fix:" : "    "} ${f}`),
    "settings",
    `  ${clientSettings(r.client)}`,
    `  ${serverSettings(r.server)}`,
    `  ${spreadLine(r.client.host, r.client.spread, r.server.host, r.server.spread)}`,
  ];
  const lost = r.outcome.lostWorkers;
  if (lost.client + lost.server > 0)
    lines.push(
      `  warning: ${lost.client} client and ${lost.server} server helper processes died or had to be killed; the counts above miss them`,
    );
  lines.push(cleanupLine(r), `took ${r.elapsedSeconds.toFixed(1)} s`);
  return `${lines.join("\n")}\n`;
}
