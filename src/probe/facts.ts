import { parsePortList, type PortRange } from "../sysctl/portList.js";
import { shQuote } from "../transport/shell.js";
import { effectiveHardNofile } from "./spread.js";

/** What both sides' fd limits are, and whether they can run the helper. */
export interface HostLimits {
  nofileSoft: string;
  nofileHard: string;
  hardNofile: number;
  nrOpen: number | null;
  fileMax: number | null;
  python: boolean;
}

/** What explains the client's wall: its port range, reserved ports, source IPs and fd limits. */
export interface ClientFacts extends HostLimits {
  portRange: { from: number; to: number; text: string };
  reservedPorts: string;
  /** Ports of the range that ip_local_reserved_ports keeps away from connect(). */
  reservedInRange: number;
  /** The interface the route to the server leaves by, and the address the kernel picks there. */
  interface: string;
  preferredSource: string;
  /** Every usable address of the server's family on that interface, the preferred one first. */
  sources: string[];
}

/** What explains a wall on the server's side: its accept and SYN queues and its fd limits. */
export interface ServerFacts extends HostLimits {
  somaxconn: number | null;
  maxSynBacklog: number | null;
  syncookies: string;
  abortOnOverflow: string;
  /** Listening sockets already on the probe's port; null when `ss` is missing. */
  portListeners: number | null;
}

export class ProbeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProbeError";
  }
}

const COMMON = [
  `say() { printf '%s %s %s\\n' "$nonce" "$1" "$2"; }`,
  `rd() { say "$1" "$(tr '\\t\\n' '  ' < "/proc/sys/$2" 2>/dev/null)"; }`,
  "rd nr_open fs/nr_open",
  "rd file_max fs/file-max",
  `say nofile_soft "$(ulimit -Sn)"`,
  `say nofile_hard "$(ulimit -Hn)"`,
  `say python3 "$(command -v python3 || true)"`,
];

/** One round trip: everything the client's wall depends on. */
export function clientFactsScript(nonce: string, serverAddress: string): string {
  return [
    `nonce=${shQuote(nonce)}`,
    ...COMMON,
    "rd port_range net/ipv4/ip_local_port_range",
    "rd reserved_ports net/ipv4/ip_local_reserved_ports",
    `say route "$(ip -j route get ${shQuote(serverAddress)} 2>&1 | tr -d '\\n')"`,
    `say addresses "$(ip -j addr show 2>&1 | tr -d '\\n')"`,
  ].join("\n");
}

/** One round trip: the server's queues, fd limits, and whether the probe's port is free. */
export function serverFactsScript(nonce: string, port: number): string {
  return [
    `nonce=${shQuote(nonce)}`,
    ...COMMON,
    "rd somaxconn net/core/somaxconn",
    "rd max_syn_backlog net/ipv4/tcp_max_syn_backlog",
    "rd syncookies net/ipv4/tcp_syncookies",
    "rd abort_on_overflow net/ipv4/tcp_abort_on_overflow",
    `if command -v ss >/dev/null 2>&1; then say port_listeners "$(ss -Hltn ${shQuote(`sport = :${port}`)} | wc -l)"; else say port_listeners ''; fi`,
  ].join("\n");
}

/** The `<nonce> <key> <value>` lines of a facts script; other lines (motd, shell noise) are ignored. */
export function parseFactLines(stdout: string, nonce: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^(\S+) (\w+) ?(.*)$/.exec(line);
    if (m && m[1] === nonce) fields.set(m[2]!, m[3]!.trim());
  }
  return fields;
}

function required(fields: Map<string, string>, key: string, host: string): string {
  const v = fields.get(key);
  if (v === undefined) throw new ProbeError(`${host}: the facts script did not report ${key}; is the login shell a POSIX sh?`);
  return v;
}

function intOrNull(text: string | undefined): number | null {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
}

function hardNofileOf(fields: Map<string, string>, host: string): number {
  const hard = effectiveHardNofile(required(fields, "nofile_hard", host), intOrNull(fields.get("nr_open")));
  if (hard === null) throw new ProbeError(`${host}: cannot read the hard open-files limit (\`ulimit -Hn\` said "${fields.get("nofile_hard")}")`);
  return hard;
}

export function parseClientFacts(stdout: string, nonce: string, host: string, serverAddress: string): ClientFacts {
  const f = parseFactLines(stdout, nonce);
  const rangeText = required(f, "port_range", host);
  const range = /^(\d+)\s+(\d+)$/.exec(rangeText);
  if (!range) throw new ProbeError(`${host}: cannot read net.ipv4.ip_local_port_range ("${rangeText}")`);
  const portRange = { from: Number(range[1]), to: Number(range[2]), text: `${range[1]} ${range[2]}` };
  const reservedPorts = f.get("reserved_ports") ?? "";
  const { iface, preferred } = parseRoute(required(f, "route", host), host, serverAddress);
  return {
    portRange,
    reservedPorts,
    reservedInRange: portsInRange(parsePortList(reservedPorts) ?? [], portRange.from, portRange.to),
    interface: iface,
    preferredSource: preferred,
    sources: sourceAddresses(required(f, "addresses", host), iface, preferred, serverAddress.includes(":") ? "inet6" : "inet"),
    nofileSoft: required(f, "nofile_soft", host),
    nofileHard: required(f, "nofile_hard", host),
    hardNofile: hardNofileOf(f, host),
    nrOpen: intOrNull(f.get("nr_open")),
    fileMax: intOrNull(f.get("file_max")),
    python: (f.get("python3") ?? "") !== "",
  };
}

export function parseServerFacts(stdout: string, nonce: string, host: string): ServerFacts {
  const f = parseFactLines(stdout, nonce);
  return {
    somaxconn: intOrNull(f.get("somaxconn")),
    maxSynBacklog: intOrNull(f.get("max_syn_backlog")),
    syncookies: f.get("syncookies") ?? "",
    abortOnOverflow: f.get("abort_on_overflow") ?? "",
    nofileSoft: required(f, "nofile_soft", host),
    nofileHard: required(f, "nofile_hard", host),
    hardNofile: hardNofileOf(f, host),
    nrOpen: intOrNull(f.get("nr_open")),
    fileMax: intOrNull(f.get("file_max")),
    python: (f.get("python3") ?? "") !== "",
    portListeners: intOrNull(f.get("port_listeners")),
  };
}

export function portsInRange(reserved: PortRange[], from: number, to: number): number {
  return reserved.reduce((n, r) => n + Math.max(0, Math.min(r.to, to) - Math.max(r.from, from) + 1), 0);
}

/** `ip -j route get ADDRESS`: the interface towards the server and the source the kernel prefers. */
export function parseRoute(text: string, host: string, serverAddress: string): { iface: string; preferred: string } {
  let routes: unknown;
  try {
    routes = JSON.parse(text);
  } catch {
    throw new ProbeError(`${host}: no route to the server ${serverAddress}: ${text || "(ip printed nothing)"}`);
  }
  const r = Array.isArray(routes) ? (routes[0] as { dev?: unknown; prefsrc?: unknown } | undefined) : undefined;
  if (!r || typeof r.dev !== "string" || typeof r.prefsrc !== "string") {
    throw new ProbeError(`${host}: \`ip -j route get ${serverAddress}\` names no interface and source address: ${text}`);
  }
  return { iface: r.dev, preferred: r.prefsrc };
}

interface AddrInfo {
  family?: string;
  local?: string;
  scope?: string;
  tentative?: boolean;
  dadfailed?: boolean;
}

/**
 * Usable source addresses on the interface facing the server: global scope, the server's family,
 * not tentative or failed duplicate detection (IPv6 extras added deprecated still count: a
 * bind() may use them). The kernel's preferred source comes first.
 */
export function sourceAddresses(ipJson: string, iface: string, preferred: string, family: "inet" | "inet6"): string[] {
  let links: unknown;
  try {
    links = JSON.parse(ipJson);
  } catch {
    return [preferred];
  }
  const link = Array.isArray(links) ? (links as Array<{ ifname?: string; addr_info?: AddrInfo[] }>).find((l) => l.ifname === iface) : undefined;
  const usable = (link?.addr_info ?? [])
    .filter((a) => a.family === family && a.scope === "global" && !a.tentative && !a.dadfailed && typeof a.local === "string")
    .map((a) => a.local!);
  return [preferred, ...usable.filter((a) => a !== preferred)];
}
