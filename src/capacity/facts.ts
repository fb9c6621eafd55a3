import { ipAddressesProbe, liveAddresses, unusableReason, type LiveAddress } from "../facts/ipAddresses.js";
import { ProbeParseError } from "../facts/probe.js";
import { parseRecords, recordPrelude } from "../remote/records.js";
import { parseLocalPortRange, parsePortList, type PortRange } from "../sysctl/portList.js";
import { shQuote } from "../transport/shell.js";
import { effectiveHardNofile } from "./spread.js";

interface HostLimits {
  nofileSoft: string;
  nofileHard: string;
  hardNofile: number;
  nrOpen: number | null;
  fileMax: number | null;
  python: boolean;
}

export interface ClientFacts extends HostLimits {
  portRange: { from: number; to: number; text: string };
  reservedPorts: string;
  /** Ports of the range ip_local_reserved_ports keeps from connect(). */
  reservedInRange: number;
  /** Where the route to the server leaves, and the source the kernel picks there. */
  interface: string;
  preferredSource: string;
  sources: string[];
}

export interface ServerFacts extends HostLimits {
  somaxconn: number | null;
  maxSynBacklog: number | null;
  syncookies: string;
  abortOnOverflow: string;
  /** Listeners already on the probe's port; null without `ss`. */
  portListeners: number | null;
}

/** The CLI prints its message. */
export class CapacityError extends Error {
  override name = "CapacityError";
}

/** One record (src/remote/records.ts) per key. */
const COMMON = [
  `say() { rec "$1" ok; printf '%s' "$2" | b64; }`,
  `rd() { say "$1" "$(tr '\\t\\n' '  ' < "/proc/sys/$2" 2>/dev/null)"; }`,
  "rd nr_open fs/nr_open",
  "rd file_max fs/file-max",
  `say nofile_soft "$(ulimit -Sn)"`,
  `say nofile_hard "$(ulimit -Hn)"`,
  `say python3 "$(command -v python3 || true)"`,
];

export function clientFactsScript(nonce: string, serverAddress: string): string {
  return [
    recordPrelude(nonce),
    ...COMMON,
    "rd port_range net/ipv4/ip_local_port_range",
    "rd reserved_ports net/ipv4/ip_local_reserved_ports",
    `say route "$(ip -j route get ${shQuote(serverAddress)} 2>&1 | tr -d '\\n')"`,
    // Parsed by the ip-addresses probe (see sourceAddresses).
    "rec addresses ok",
    `( ${ipAddressesProbe.script(undefined)}\n) 2>&1 | b64`,
  ].join("\n");
}

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

/** Each value trimmed; other output (motd, shell noise) is ignored. */
export function parseFactRecords(stdout: string, nonce: string): Map<string, string> {
  return new Map([...parseRecords(stdout, nonce).values()].map((r) => [r.id, r.payload.trim()]));
}

function intOrNull(text: string | undefined): number | null {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
}

function fieldsOf(stdout: string, nonce: string, host: string) {
  const f = parseFactRecords(stdout, nonce);
  const required = (key: string): string => {
    const v = f.get(key);
    if (v === undefined)
      throw new CapacityError(`${host}: the facts script did not report ${key}; is the login shell a POSIX sh?`);
    return v;
  };
  const limits = (): HostLimits => {
    const nofileSoft = required("nofile_soft");
    const nofileHard = required("nofile_hard");
    const nrOpen = intOrNull(f.get("nr_open"));
    const hardNofile = effectiveHardNofile(nofileHard, nrOpen);
    if (hardNofile === null)
      throw new CapacityError(`${host}: cannot read the hard open-files limit (\`ulimit -Hn\` said "${nofileHard}")`);
    const fileMax = intOrNull(f.get("file_max"));
    return { nofileSoft, nofileHard, hardNofile, nrOpen, fileMax, python: Boolean(f.get("python3")) };
  };
  return { get: (key: string) => f.get(key), int: (key: string) => intOrNull(f.get(key)), required, limits };
}

export function parseClientFacts(stdout: string, nonce: string, host: string, serverAddress: string): ClientFacts {
  const f = fieldsOf(stdout, nonce, host);
  const rangeText = f.required("port_range");
  const range = parseLocalPortRange(rangeText);
  if (!range) throw new CapacityError(`${host}: cannot read net.ipv4.ip_local_port_range ("${rangeText}")`);
  const reservedPorts = f.get("reserved_ports") ?? "";
  const { iface, preferred } = parseRoute(f.required("route"), host, serverAddress);
  return {
    portRange: { ...range, text: `${range.from} ${range.to}` },
    reservedPorts,
    reservedInRange: portsInRange(parsePortList(reservedPorts) ?? [], range.from, range.to),
    interface: iface,
    preferredSource: preferred,
    sources: sourceAddresses(f.required("addresses"), iface, preferred, serverAddress.includes(":") ? 6 : 4),
    ...f.limits(),
  };
}

export function parseServerFacts(stdout: string, nonce: string, host: string): ServerFacts {
  const f = fieldsOf(stdout, nonce, host);
  return {
    somaxconn: f.int("somaxconn"),
    maxSynBacklog: f.int("max_syn_backlog"),
    syncookies: f.get("syncookies") ?? "",
    abortOnOverflow: f.get("abort_on_overflow") ?? "",
    ...f.limits(),
    portListeners: f.int("port_listeners"),
  };
}

export function portsInRange(reserved: PortRange[], from: number, to: number): number {
  return reserved.reduce((n, r) => n + Math.max(0, Math.min(r.to, to) - Math.max(r.from, from) + 1), 0);
}

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
 * The preferred source, then the addresses of the server's family on that interface that bind()
 * can use now (deprecated IPv6 extras count) and unusableReason, secondary-source-ips' rule, allows.
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
