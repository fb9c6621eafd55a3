import { plural, thousands } from "../output/words.js";
import type { ClientFacts, ServerFacts } from "./facts.js";
import type { ClientResult, ServerResult } from "./remote.js";
import { MAX_PROCESSES_PER_SIDE, type Spread } from "./spread.js";

/** What the helpers measured, summed over their processes. */
export interface Outcome {
  /** Connections the client processes had open when they stopped opening more. */
  held: number;
  /** ESTABLISHED sockets to the server's ip:port counted by the kernel at the start and end of the hold (null without ss). */
  establishedAtHoldStart: number | null;
  establishedAtHoldEnd: number | null;
  /** Connections the server processes accepted, and the sum of their peaks of open connections. */
  accepted: number;
  serverPeak: number;
  /** Why the client stopped: "bound", "time", or an errno name (EADDRNOTAVAIL, EMFILE, ETIMEDOUT, …). */
  stop: string;
  /** How many client processes stopped for each reason. */
  stops: Record<string, number>;
  clientErrors: Record<string, number>;
  serverErrors: Record<string, number>;
  perSource: Array<{ source: string; held: number; stop: string | null }>;
  netstat: Record<string, number>;
  rampSeconds: number;
  holdSeconds: number;
  /** Helper processes that died without reporting, or were killed at the end. */
  lostWorkers: { client: number; server: number };
}

export interface Diagnosis {
  /** One line: the wall, with the error that showed it. */
  wall: string;
  /** Why, in numbers from the hosts' settings. */
  why: string[];
  /** What moves the wall (the roles that do it). */
  fix: string[];
  /** Connections to one destination ip:port that the client's port ranges allow: source IPs × free ports. */
  portCapacity: number;
}

/** Reasons in the order they explain a stop when processes disagree: resource limits first, the clock last. */
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

/** The reason most processes stopped for (ties: the one that explains more); "bound" when the bound was reached. */
export function stopReason(stops: Record<string, number>, held: number, bound: number): string {
  if (held >= bound) return "bound";
  const reasons = Object.entries(stops).filter(([r]) => r !== "bound");
  if (reasons.length === 0) return "bound";
  reasons.sort((a, b) => b[1] - a[1] || rank(a[0]) - rank(b[0]));
  return reasons[0]![0];
}

export function aggregate(client: ClientResult, server: ServerResult, bound: number, fallbackSource: string): Outcome {
  const workers = client.workers.filter((w): w is NonNullable<typeof w> => w !== null);
  const servers = server.workers.filter((w): w is NonNullable<typeof w> => w !== null);
  const stops: Record<string, number> = {};
  const clientErrors: Record<string, number> = {};
  const serverErrors: Record<string, number> = {};
  const bySource = new Map<string, { held: number; stop: string | null }>();
  for (const w of workers) {
    stops[w.stop] = (stops[w.stop] ?? 0) + 1;
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
  return Math.max(0, c.portRange.to - c.portRange.from + 1 - c.reservedInRange);
}

/** One port range per source IP and destination ip:port. */
export function portCapacity(c: ClientFacts, sources: number): number {
  return sources * portsPerSource(c);
}

function portsWhy(c: ClientFacts, sources: string[], dst: string): string {
  const size = c.portRange.to - c.portRange.from + 1;
  const reserved = c.reservedInRange > 0 ? `, minus ${thousands(c.reservedInRange)} in ip_local_reserved_ports` : "";
  return (
    `${plural(sources.length, "source IP")} × ${thousands(portsPerSource(c))} ports (ip_local_port_range ${c.portRange.from}–${c.portRange.to} = ${thousands(size)}${reserved}) ` +
    `= ${thousands(portCapacity(c, sources.length))} connections to ${dst}`
  );
}

function portsFix(c: ClientFacts): string[] {
  const fix: string[] = [];
  if (c.portRange.from > 1024 || c.portRange.to < 65535) {
    fix.push("widen net.ipv4.ip_local_port_range: role ephemeral-ports (1024–65535 = 64,512 ports per source IP)");
  }
  fix.push(
    "add source IPs and bind(src_ip, 0) with IP_BIND_ADDRESS_NO_PORT in the app: role secondary-source-ips (each address adds one port range)",
  );
  return fix;
}

function queueWhy(s: ServerFacts, server: Spread, o: Outcome): string {
  const backlog = s.somaxconn === null ? "?" : thousands(s.somaxconn);
  const counters = Object.entries(o.netstat)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${thousands(n)}`);
  return (
    `server: somaxconn ${backlog} caps each listen() backlog (${plural(server.processes, "listener")} on one port), ` +
    `tcp_max_syn_backlog ${s.maxSynBacklog === null ? "?" : thousands(s.maxSynBacklog)}, tcp_syncookies ${s.syncookies || "?"}; listen-queue counters during the probe: ${counters.length > 0 ? counters.join(", ") : "all 0"}`
  );
}

export interface DiagnosisInput {
  outcome: Outcome;
  client: ClientFacts;
  server: ServerFacts;
  clientSpread: Spread;
  serverSpread: Spread;
  sources: string[];
  /** "ip:port" the client connected to. */
  destination: string;
  bound: number;
}

/** Sockets the probe's client processes can open at most (each up to its hard nofile). */
function fdReach(d: DiagnosisInput): number {
  return MAX_PROCESSES_PER_SIDE * d.clientSpread.hardNofile;
}

function reach(d: DiagnosisInput): number {
  return Math.min(portCapacity(d.client, d.sources.length), fdReach(d));
}

/** Which setting explains where the probe stopped, with the numbers, and what moves it. */
export function diagnose(d: DiagnosisInput): Diagnosis {
  const { outcome: o, client: c, server: s } = d;
  const capacity = portCapacity(c, d.sources.length);
  const base = { portCapacity: capacity };
  const serverFull = (o.serverErrors.EMFILE ?? 0) + (o.serverErrors.ENFILE ?? 0) > 0;
  switch (o.stop) {
    case "bound":
      return {
        ...base,
        wall: `none hit: the probe's bound (--max ${thousands(d.bound)}) was reached`,
        why: [`the ports allow ${portsWhy(c, d.sources, d.destination)}`],
        fix:
          reach(d) > d.bound
            ? [
                `raise --max to look further: up to ${thousands(reach(d))} (the port ranges allow ${thousands(capacity)}; ${MAX_PROCESSES_PER_SIDE} processes × hard nofile ${thousands(d.clientSpread.hardNofile)} = ${thousands(fdReach(d))})`,
              ]
            : [],
      };
    case "EADDRNOTAVAIL": {
      const inUse = capacity - o.held;
      return {
        ...base,
        wall: "ports for one destination ip:port exhausted (EADDRNOTAVAIL)",
        why: [
          `${portsWhy(c, d.sources, d.destination)}; reached ${thousands(o.held)}${inUse > 0 ? ` (${thousands(inUse)} taken by other sockets or still closing)` : ""}`,
        ],
        fix: portsFix(c),
      };
    }
    case "EMFILE":
      return {
        ...base,
        wall: "open files per process (EMFILE)",
        why: [
          `each client process may open ${thousands(d.clientSpread.hardNofile)} files (hard nofile; the helper raises its soft ${c.nofileSoft} to it), ` +
            `and the probe runs at most ${plural(d.clientSpread.processes, "process")}: ${thousands(d.clientSpread.processes * d.clientSpread.hardNofile)} sockets in all`,
        ],
        fix: [
          "raise the hard nofile of the service and its logins: role fd-limits (limits.d, LimitNOFILE); above the parent's hard limit it needs CAP_SYS_RESOURCE",
        ],
      };
    case "ENFILE":
      return {
        ...base,
        wall: "open files of the whole system (ENFILE)",
        why: [`fs.file-max is ${c.fileMax === null ? "?" : thousands(c.fileMax)} on the client`],
        fix: ["raise fs.file-max: role fd-limits"],
      };
    case "ETIMEDOUT":
      return {
        ...base,
        wall: serverFull
          ? "the server's open files per process (EMFILE on accept), seen as connect timeouts"
          : "handshakes not completing (ETIMEDOUT): SYNs or ACKs dropped",
        why: [
          serverFull
            ? `the server's accepting processes hit their hard nofile ${thousands(d.serverSpread.hardNofile)} (${plural(d.serverSpread.processes, "process")}); queued connections then time out`
            : queueWhy(s, d.serverSpread, o),
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
        ...base,
        wall: "connections refused (ECONNREFUSED)",
        why: [
          o.held === 0
            ? `nothing accepted connections on ${d.destination} (a firewall rejecting them, or the listener never started)`
            : `the server reset connections: with tcp_abort_on_overflow ${s.abortOnOverflow || "?"} a full accept queue answers with a reset; ${queueWhy(s, d.serverSpread, o)}`,
        ],
        fix: ["raise somaxconn and keep tcp_abort_on_overflow = 0: role syn-backlog"],
      };
    case "time":
      return {
        ...base,
        wall: "the probe's time limit for opening connections",
        why: [
          `${thousands(o.held)} connections opened in ${o.rampSeconds.toFixed(1)} s; the hosts are too busy or the network too slow to go further in time`,
        ],
        fix: ["run the probe again on quieter hosts, or with a lower --max"],
      };
    default:
      return {
        ...base,
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
