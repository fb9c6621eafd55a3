import { ipAddressesProbe, liveAddresses, unusableReason, type LiveAddress } from "../facts/ipAddresses.js";
import { ProbeParseError } from "../facts/probe.js";
import { parseRecords, recordPrelude } from "../remote/records.js";
import { parseLocalPortRange, parsePortList, type PortRange } from "../sysctl/portList.js";
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

/** Why the capacity probe cannot go on (or could not measure); the CLI prints the message. */
export class CapacityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CapacityError";
  }
}

/** Facts go back as the project's records (src/remote/records.ts): one per key, its value exact. */
const COMMON = [
  `say() { rec "$1" ok; printf '%s' "$2" | b64; }`,
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
    recordPrelude(nonce),
    ...COMMON,
    "rd port_range net/ipv4/ip_local_port_range",
    "rd reserved_ports net/ipv4/ip_local_reserved_ports",
    `say route "$(ip -j route get ${shQuote(serverAddress)} 2>&1 | tr -d '\\n')"`,
    // The project's ip-addresses probe, script and parser (see sourceAddresses).
    "rec addresses ok",
    `( ${ipAddressesProbe.script(undefined)}\n) 2>&1 | b64`,
  ].join("\n");
}

/** One round trip: the server's queues, fd limits, and whether the probe's port is free. */
export function serverFactsScript(nonce: string, port: number): string {
  return [
    recordPrelude(nonce),
    ...COMMON,
    "rd somaxconn net/core/somaxconn",
    "rd max_syn_backlog net/ipv4/tcp_max_syn_backlog",
    "rd syncookies net/ipv4/tcp_syncookies",
    "rd abort_on_overflow net/ipv4/tcp_abort_on_overflow",
    `if command -v ss >/dev/null 2>&1; then say port_listeners "$(ss -Hltn ${shQuote(`sport = :${port}`)} | wc -l)"; else say port_listeners ''; fi`,
  ].join("\n");
}

/** The records of a facts script, each value trimmed; other output (motd, shell noise) is ignored. */
export function parseFactRecords(stdout: string, nonce: string): Map<string, string> {
  return new Map([...parseRecords(stdout, nonce).values()].map((r) => [r.id, r.payload.trim()]));
}

function required(fields: Map<string, string>, key: string, host: string): string {
  const v = fields.get(key);
  if (v === undefined)
    throw new CapacityError(`${host}: the facts script did not report ${key}; is the login shell a POSIX sh?`);
  return v;
}

function intOrNull(text: string | undefined): number | null {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
}

function hardNofileOf(fields: Map<string, string>, host: string): number {
  const hard = effectiveHardNofile(required(fields, "nofile_hard", host), intOrNull(fields.get("nr_open")));
  if (hard === null)
    throw new CapacityError(
      `${host}: cannot read the hard open-files limit (\`ulimit -Hn\` said "${fields.get("nofile_hard")}")`,
    );
  return hard;
}

export function parseClientFacts(stdout: string, nonce: string, host: string, serverAddress: string): ClientFacts {
  const f = parseFactRecords(stdout, nonce);
  const rangeText = required(f, "port_range", host);
  const range = parseLocalPortRange(rangeText);
  if (!range) throw new CapacityError(`${host}: cannot read net.ipv4.ip_local_port_range ("${rangeText}")`);
  const portRange = { ...range, text: `${range.from} ${range.to}` };
  const reservedPorts = f.get("reserved_ports") ?? "";
  const { iface, preferred } = parseRoute(required(f, "route", host), host, serverAddress);
  return {
    portRange,
    reservedPorts,
    reservedInRange: portsInRange(parsePortList(reservedPorts) ?? [], portRange.from, portRange.to),
    interface: iface,
    preferredSource: preferred,
    sources: sourceAddresses(required(f, "addresses", host), iface, preferred, serverAddress.includes(":") ? 6 : 4),
    nofileSoft: required(f, "nofile_soft", host),
    nofileHard: required(f, "nofile_hard", host),
    hardNofile: hardNofileOf(f, host),
    nrOpen: intOrNull(f.get("nr_open")),
    fileMax: intOrNull(f.get("file_max")),
    python: (f.get("python3") ?? "") !== "",
  };
}

export function parseServerFacts(stdout: string, nonce: string, host: string): ServerFacts {
  const f = parseFactRecords(stdout, nonce);
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
    throw new CapacityError(`${host}: no route to the server ${serverAddress}: ${text || "(ip printed nothing)"}`);
  }
  const r = Array.isArray(routes) ? (routes[0] as { dev?: unknown; prefsrc?: unknown } | undefined) : undefined;
  if (!r || typeof r.dev !== "string" || typeof r.prefsrc !== "string") {
    throw new CapacityError(
      `${host}: \`ip -j route get ${serverAddress}\` names no interface and source address: ${text}`,
    );
  }
  return { iface: r.dev, preferred: r.prefsrc };
}

/**
 * Usable source addresses on the interface facing the server, from the ip-addresses probe's
 * output: the server's family, not tentative or failed duplicate detection (IPv6 extras added
 * deprecated still count: a bind() may use them), and none that can never be a source (loopback,
 * link-local, …: unusableReason, the rule secondary-source-ips applies to the addresses it adds).
 * The kernel's preferred source comes first; without a readable answer it is the only one.
 */
export function sourceAddresses(ipAddressesOutput: string, iface: string, preferred: string, family: 4 | 6): string[] {
  let onIface: LiveAddress[];
  try {
    onIface = liveAddresses(ipAddressesProbe.parse(ipAddressesOutput, undefined)).get(iface) ?? [];
  } catch (err) {
    if (err instanceof ProbeParseError) return [preferred];
    throw err;
  }
  const usable = onIface
    .filter((a) => a.family === family && !a.tentative && !a.dadfailed && unusableReason(a) === null)
    .map((a) => a.address);
  return [preferred, ...usable.filter((a) => a !== preferred)];
}
