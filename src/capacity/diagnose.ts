import { plural, thousands } from "../output/words.js";
import type { ClientFacts, ServerFacts } from "./facts.js";
import type { ClientResult, ServerResult } from "./remote.js";
import { MAX_PROCESSES_PER_SIDE, type Spread } from "./spread.js";

/** What the helpers measured, summed over their processes. */
export interface Outcome {
  held: number;
  /** The kernel's count of ESTABLISHED sockets to the server's ip:port (null without ss). */
  establishedAtHoldStart: number | null;
  establishedAtHoldEnd: number | null;
  accepted: number;
  serverPeak: number;
  /** "bound", "time", or an errno name (EADDRNOTAVAIL, EMFILE, …). */
  stop: string;
  /** Client processes per stop reason. */
  stops: Record<string, number>;
  clientErrors: Record<string, number>;
  serverErrors: Record<string, number>;
  perSource: Array<{ source: string; held: number; stop: string | null }>;
  netstat: Record<string, number>;
  rampSeconds: number;
  holdSeconds: number;
  /** Helper processes that died without reporting, or were killed. */
  lostWorkers: { client: number; server: number };
}

/** The wall with the error that showed it, why (in the hosts' numbers), and the roles that move it. */
export interface Diagnosis {
  wall: string;
  why: string[];
  fix: string[];
  /** Connections to one ip:port the client's ports allow: source IPs × free ports. */
  portCapacity: number;
}

/** What explains a stop when processes disagree: resource limits first, the clock last. */
const PRIORITY = [
  "EMFILE",
  "ENFILE",
  "EADDRNOTAVAIL",
  "ETIMEDOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ENETUNREACH",
  "EHOSTUNREACH",
];

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

function rank(reason: string): number {
  if (reason === "time") return PRIORITY.length + 1;
  const i = PRIORITY.indexOf(reason);
  return i === -1 ? PRIORITY.length : i;
}

/** The reason most processes stopped for; a tie goes to the one that explains more. */
export function stopReason(stops: Record<string, number>, held: number, bound: number): string {
  if (held >= bound) return "bound";
  const reasons = Object.entries(stops).filter(([r]) => r !== "bound");
  if (reasons.length === 0) return "bound";
  reasons.sort((a, b) => b[1] - a[1] || rank(a[0]) - rank(b[0]));
  return reasons[0]![0];
}

export function aggregate(client: ClientResult, server: ServerResult, bound: number, fallbackSource: string): Outcome {
  const workers = client.workers.filter((w) => w !== null);
  const servers = server.workers.filter((w) => w !== null);
  const stops: Record<string, number> = {};
  const clientErrors: Record<string, number> = {};
  const serverErrors: Record<string, number> = {};
  const bySource = new Map<string, { held: number; stop: string | null }>();
  for (const w of workers) {
    add(stops, { [w.stop]: 1 });
    add(clientErrors, w.errors);
    for (const p of w.perSource) {
      const source = p.source ?? fallbackSource;
      const s = bySource.get(source) ?? { held: 0, stop: null };
      s.held += p.held;
      s.stop ??= p.stop;
      bySource.set(source, s);
    }
  }
  for (const w of servers) add(serverErrors, w.errors);
  const held = workers.reduce((n, w) => n + w.held, 0);
  return {
    held,
    establishedAtHoldStart: client.establishedAtHoldStart,
    establishedAtHoldEnd: client.establishedAtHoldEnd,
    accepted: servers.reduce((n, w) => n + w.accepted, 0),
    serverPeak: servers.reduce((n, w) => n + w.peak, 0),
    stop: stopReason(stops, held, bound),
    stops,
    clientErrors,
    serverErrors,
    perSource: [...bySource].map(([source, s]) => ({ source, ...s })),
    netstat: server.netstat,
    rampSeconds: client.rampSeconds,
    holdSeconds: client.holdSeconds,
    lostWorkers: {
      client: client.workers.length - workers.length + client.killedWorkers,
      server: server.workers.length - servers.length + server.killedWorkers,
    },
  };
}

export function portsPerSource(c: ClientFacts): number {
  return Math.max(0, rangeSize(c) - c.reservedInRange);
}

export function portCapacity(c: ClientFacts, sources: number): number {
  return sources * portsPerSource(c);
}

export function rangeSize(c: ClientFacts): number {
  return c.portRange.to - c.portRange.from + 1;
}

export function countOrUnknown(n: number | null): string {
  return n === null ? "?" : thousands(n);
}

function portsWhy(c: ClientFacts, sources: string[], dst: string): string {
  const reserved = c.reservedInRange > 0 ? `, minus ${thousands(c.reservedInRange)} in ip_local_reserved_ports` : "";
  return (
    `${plural(sources.length, "source IP")} × ${thousands(portsPerSource(c))} ports (ip_local_port_range ${c.portRange.from}–${c.portRange.to} = ${thousands(rangeSize(c))}${reserved}) ` +
    `= ${thousands(portCapacity(c, sources.length))} connections to ${dst}`
  );
}

function portsFix(c: ClientFacts): string[] {
  const narrow = c.portRange.from > 1024 || c.portRange.to < 65535;
  return [
    ...(narrow
      ? ["widen net.ipv4.ip_local_port_range: role ephemeral-ports (1024–65535 = 64,512 ports per source IP)"]
      : []),
    "add source IPs and bind(src_ip, 0) with IP_BIND_ADDRESS_NO_PORT in the app: role secondary-source-ips (each address adds one port range)",
  ];
}

function queueWhy(s: ServerFacts, server: Spread, o: Outcome): string {
  const counters = Object.entries(o.netstat)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${thousands(n)}`);
  return (
    `server: somaxconn ${countOrUnknown(s.somaxconn)} caps each listen() backlog (${plural(server.processes, "listener")} on one port), ` +
    `tcp_max_syn_backlog ${countOrUnknown(s.maxSynBacklog)}, tcp_syncookies ${s.syncookies || "?"}; listen-queue counters during the probe: ${counters.length > 0 ? counters.join(", ") : "all 0"}`
  );
}

interface DiagnosisInput {
  outcome: Outcome;
  client: ClientFacts;
  server: ServerFacts;
  clientSpread: Spread;
  serverSpread: Spread;
  sources: string[];
  destination: string;
  bound: number;
}

export function diagnose(d: DiagnosisInput): Diagnosis {
  return { portCapacity: portCapacity(d.client, d.sources.length), ...wallOf(d) };
}

function wallOf(d: DiagnosisInput): Omit<Diagnosis, "portCapacity"> {
  const { outcome: o, client: c, server: s, clientSpread, serverSpread } = d;
  const capacity = portCapacity(c, d.sources.length);
  const serverFull = (o.serverErrors.EMFILE ?? 0) + (o.serverErrors.ENFILE ?? 0) > 0;
  switch (o.stop) {
    case "bound": {
      const fdReach = MAX_PROCESSES_PER_SIDE * clientSpread.hardNofile;
      const reach = Math.min(capacity, fdReach);
      return {
        wall: `none hit: the probe's bound (--max ${thousands(d.bound)}) was reached`,
        why: [`the ports allow ${portsWhy(c, d.sources, d.destination)}`],
        fix:
          reach > d.bound
            ? [
                `raise --max to look further: up to ${thousands(reach)} (the port ranges allow ${thousands(capacity)}; ${MAX_PROCESSES_PER_SIDE} processes × hard nofile ${thousands(clientSpread.hardNofile)} = ${thousands(fdReach)})`,
              ]
            : [],
      };
    }
    case "EADDRNOTAVAIL": {
      const inUse = capacity - o.held;
      return {
        wall: "ports for one destination ip:port exhausted (EADDRNOTAVAIL)",
        why: [
          `${portsWhy(c, d.sources, d.destination)}; reached ${thousands(o.held)}${inUse > 0 ? ` (${thousands(inUse)} taken by other sockets or still closing)` : ""}`,
        ],
        fix: portsFix(c),
      };
    }
    case "EMFILE":
      return {
        wall: "open files per process (EMFILE)",
        why: [
          `each client process may open ${thousands(clientSpread.hardNofile)} files (hard nofile; the helper raises its soft ${c.nofileSoft} to it), ` +
            `and the probe runs at most ${plural(clientSpread.processes, "process")}: ${thousands(clientSpread.processes * clientSpread.hardNofile)} sockets in all`,
        ],
        fix: [
          "raise the hard nofile of the service and its logins: role fd-limits (limits.d, LimitNOFILE); above the parent's hard limit it needs CAP_SYS_RESOURCE",
        ],
      };
    case "ENFILE":
      return {
        wall: "open files of the whole system (ENFILE)",
        why: [`fs.file-max is ${countOrUnknown(c.fileMax)} on the client`],
        fix: ["raise fs.file-max: role fd-limits"],
      };
    case "ETIMEDOUT":
      return {
        wall: serverFull
          ? "the server's open files per process (EMFILE on accept), seen as connect timeouts"
          : "handshakes not completing (ETIMEDOUT): SYNs or ACKs dropped",
        why: [
          serverFull
            ? `the server's accepting processes hit their hard nofile ${thousands(serverSpread.hardNofile)} (${plural(serverSpread.processes, "process")}); queued connections then time out`
            : queueWhy(s, serverSpread, o),
        ],
        fix: serverFull
          ? ["raise the server's hard nofile: role fd-limits"]
          : [
              "raise somaxconn and tcp_max_syn_backlog: role syn-backlog",
              "a full conntrack table drops packets too (`nf_conntrack: table full`): role conntrack",
            ],
      };
    case "ECONNREFUSED":
      return {
        wall: "connections refused (ECONNREFUSED)",
        why: [
          o.held === 0
            ? `nothing accepted connections on ${d.destination} (a firewall rejecting them, or the listener never started)`
            : `the server reset connections: with tcp_abort_on_overflow ${s.abortOnOverflow || "?"} a full accept queue answers with a reset; ${queueWhy(s, serverSpread, o)}`,
        ],
        fix: ["raise somaxconn and keep tcp_abort_on_overflow = 0: role syn-backlog"],
      };
    case "time":
      return {
        wall: "the probe's time limit for opening connections",
        why: [
          `${thousands(o.held)} connections opened in ${o.rampSeconds.toFixed(1)} s; the hosts are too busy or the network too slow to go further in time`,
        ],
        fix: ["run the probe again on quieter hosts, or with a lower --max"],
      };
    default:
      return {
        wall: `an unexpected error stopped the client (${o.stop})`,
        why: [
          `client errors: ${
            Object.entries(o.clientErrors)
              .map(([k, n]) => `${k} ${thousands(n)}`)
              .join(", ") || "none"
          }`,
        ],
        fix: [],
      };
  }
}
