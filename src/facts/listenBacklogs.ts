import { defineProbe, ProbeParseError } from "./probe.js";

/** One TCP listening socket and the accept-queue length the kernel gave it at listen() time. */
export interface Listener {
  /** As ss prints it without brackets: "0.0.0.0", "::", "fe80::1", or "*" (IPv6 socket accepting IPv4 too). */
  address: string;
  /** The device a socket is bound to (SO_BINDTODEVICE or an IPv6 scope), from ss's `%iface`. */
  iface: string | null;
  port: number;
  /** ss's Send-Q of a LISTEN socket: min(the application's listen() backlog, somaxconn when it called listen()). */
  backlog: number;
}

export const SS_MISSING_EXIT = 127;

/**
 * `ss -ltn` rather than `ss -Hltn`: -H only exists since iproute2 4.15, and the parser skips the
 * header anyway. Without ss there is no other source of the backlog (/proc/net/tcp lacks it).
 */
export const LISTEN_BACKLOGS_COMMAND = [
  `if ! command -v ss >/dev/null 2>&1; then echo "ss is not installed (package iproute2), so listening sockets' backlogs cannot be read"; exit ${SS_MISSING_EXIT}; fi`,
  "LC_ALL=C ss -ltn",
].join("\n");

const ENDPOINT = /^(?<host>\[[^\]]*\]|[^\s%[\]]*?)(?:%(?<iface>[^\s:%]+))?:(?<port>\d{1,5})$/;

/** Pure: the LISTEN lines of `ss -ltn` (with or without its header). */
export function parseSsListeners(raw: string): Listener[] {
  const listeners: Listener[] = [];
  for (const line of raw.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[0] === "" || cols[0] === "State") continue;
    const [state, , sendQ, local] = cols;
    if (state !== "LISTEN" || sendQ === undefined || !/^\d+$/.test(sendQ) || local === undefined) {
      throw new ProbeParseError(`unexpected line from ss -ltn: ${JSON.stringify(line)}`);
    }
    listeners.push({ ...parseEndpoint(local, line), backlog: Number(sendQ) });
  }
  return listeners;
}

function parseEndpoint(local: string, line: string): Omit<Listener, "backlog"> {
  const m = ENDPOINT.exec(local);
  const port = Number(m?.groups?.port);
  if (!m?.groups || m.groups.host === "" || port > 65535) {
    throw new ProbeParseError(`unexpected local address ${JSON.stringify(local)} in ss line ${JSON.stringify(line)}`);
  }
  return { address: m.groups.host!.replace(/^\[(.*)\]$/, "$1"), iface: m.groups.iface ?? null, port };
}

/** "0.0.0.0:80", "[::]:80", "[fe80::1]%eth0:7000", "127.0.0.1%lo:53", "*:9000" — the field name of one listener. */
export function endpointName(l: Pick<Listener, "address" | "iface" | "port">): string {
  const host = l.address.includes(":") ? `[${l.address}]` : l.address;
  return `${host}${l.iface === null ? "" : `%${l.iface}`}:${l.port}`;
}

/**
 * One listener per endpoint. Sockets sharing an endpoint (SO_REUSEPORT, one per worker) each have
 * their own queue; the smallest is the one that overflows first.
 */
export function smallestPerEndpoint(listeners: Listener[]): Listener[] {
  const smallest = new Map<string, Listener>();
  for (const l of listeners) {
    const name = endpointName(l);
    const seen = smallest.get(name);
    if (!seen || l.backlog < seen.backlog) smallest.set(name, l);
  }
  return [...smallest.values()];
}

export const LISTEN_BACKLOGS_PROBE = defineProbe({
  name: "listen-backlogs",
  script: () => LISTEN_BACKLOGS_COMMAND,
  parse: (raw): Listener[] => smallestPerEndpoint(parseSsListeners(raw)),
});
