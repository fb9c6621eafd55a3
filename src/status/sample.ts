import { parseRecords, type RemoteRecord } from "../remote/records.js";
import { parsePortList, parseLocalPortRange, type PortRange } from "../sysctl/portList.js";
import { STATUS_SYSCTLS } from "./collect.js";
import { decodeEndpoint } from "./endpoint.js";

/** What one run of the status script saw on one host, decoded; walls.ts judges it. */
export interface HostSample {
  /** Seconds between the two counter readings. */
  windowSeconds: number;
  sysctl: Partial<Record<(typeof STATUS_SYSCTLS)[number], string>>;
  portRange: PortRange | null;
  reservedPorts: PortRange[];
  processes: {
    /** Processes whose fd table was read, and the fds they hold. */
    read: number;
    fds: number;
    /** Processes whose fd table was not readable (another user's, without become). */
    unreadable: number;
    /** Worst fds / soft nofile first. */
    worst: ProcessFds[];
  };
  /** From /proc/net/sockstat; null where the kernel did not print it. */
  timeWait: number | null;
  orphans: number | null;
  socketsByState: Record<string, number>;
  /** Outbound sockets (local port not a listening port) per remote ip:port, every state. */
  destinations: Destination[];
  listeners: ListenerQueue[];
  /** Null without ss. */
  keepalive: KeepaliveSample | null;
  /** Increase over the window; null where the counter does not exist on this kernel. */
  netstat: Record<NetstatCounter, number | null>;
  /** Null without nf_conntrack. */
  conntrack: Record<ConntrackCounter, number> | null;
}

export interface ProcessFds {
  pid: number;
  name: string;
  fds: number;
  soft: number;
  hard: number | null;
}

export interface Destination {
  /** "198.18.0.3:5201", "[2001:db8::1]:443". */
  endpoint: string;
  sockets: number;
  timeWait: number;
  /** Local addresses the host's sockets to it use. */
  sources: number;
}

export interface ListenerQueue {
  endpoint: string;
  port: number;
  /** Connections completed and waiting for accept(). */
  acceptQueue: number;
  /** Null without ss (only ss reads it). */
  backlog: number | null;
  /** Half-open connections (SYN_RECV) on its port. */
  synQueue: number;
}

export interface KeepaliveSample {
  detectionSeconds: number;
  established: number;
  withKeepalive: number;
  /** Established sockets that received nothing for longer than the detection time. */
  idle: number;
  idleWithKeepalive: number;
  longestIdle: Array<{ idleSeconds: number; keepalive: boolean; local: string; peer: string }>;
}

export const NETSTAT_COUNTERS = ["ListenOverflows", "ListenDrops", "TCPBacklogDrop", "TCPReqQFullDrop"] as const;
export type NetstatCounter = (typeof NETSTAT_COUNTERS)[number];
export const CONNTRACK_COUNTERS = ["drop", "early_drop", "insert_failed"] as const;
export type ConntrackCounter = (typeof CONNTRACK_COUNTERS)[number];

export class StatusParseError extends Error {}

/** TCP states as /proc/net/tcp numbers them (include/net/tcp_states.h). */
const TCP_STATES: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
  "0C": "NEW_SYN_RECV",
};

/** Pure: the status script's stdout. Throws StatusParseError when a record is missing or malformed. */
export function parseStatusOutput(stdout: string, nonce: string): HostSample {
  const records = parseRecords(stdout, nonce);
  const get = (id: string): RemoteRecord => {
    const r = records.get(id);
    if (!r) throw new StatusParseError(`the status script's output lacks its ${id} record (it stopped early?)`);
    return r;
  };
  const littleEndian = parseEndian(get("endian").payload);
  const sysctl = parseSysctls(get("sysctls").payload);
  const sockets = parseSocketLines(get("sockets").payload, littleEndian);
  const sockstat = parseSockstat(get("sockstat").payload);
  const listenersRecord = get("listeners");
  const windowText = get("window").payload.trim();
  const windowCs = Number(windowText);
  if (!/^\d+$/.test(windowText))
    throw new StatusParseError(`malformed window record ${JSON.stringify(get("window").payload)}`);
  const keepaliveRecord = get("keepalive");
  const reserved = parsePortList(sysctl["net/ipv4/ip_local_reserved_ports"] ?? "");
  const synByPort = new Map<number, number>();
  for (const [endpoint, count] of sockets.synRecv) {
    const port = Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
    synByPort.set(port, (synByPort.get(port) ?? 0) + count);
  }
  const listeners =
    listenersRecord.status === "ok"
      ? parseSsListenQueues(listenersRecord.payload)
      : sockets.listeners.map((l) => ({ ...l, backlog: null }));
  return {
    windowSeconds: windowCs / 100,
    sysctl,
    portRange: parseLocalPortRange(sysctl["net/ipv4/ip_local_port_range"]),
    reservedPorts: reserved ?? [],
    processes: parseProcesses(get("processes").payload),
    timeWait: sockstat.tw ?? sockets.byState.TIME_WAIT ?? null,
    orphans: sockstat.orphan ?? null,
    socketsByState: sockets.byState,
    destinations: sockets.destinations,
    listeners: listeners.map((l) => ({ ...l, synQueue: synByPort.get(l.port) ?? 0 })),
    keepalive: keepaliveRecord.status === "ok" ? parseKeepalive(keepaliveRecord.payload, sysctl) : null,
    netstat: netstatIncrease(get("netstat0").payload, get("netstat1").payload),
    conntrack: conntrackIncrease(get("conntrack0"), get("conntrack1")),
  };
}

function parseEndian(payload: string): boolean {
  const v = payload.trim();
  if (v === "1") return true;
  if (v === "256") return false;
  throw new StatusParseError(`cannot tell the host's byte order from od's ${JSON.stringify(v)}`);
}

export function parseSysctls(payload: string): HostSample["sysctl"] {
  const out: HostSample["sysctl"] = {};
  const known = new Set<string>(STATUS_SYSCTLS);
  for (const line of payload.split("\n")) {
    const m = /^\/proc\/sys\/([^:]+):(.*)$/.exec(line);
    if (m && known.has(m[1]!)) out[m[1] as (typeof STATUS_SYSCTLS)[number]] = m[2]!;
  }
  return out;
}

/** `P ratio pid fds soft hard comm` lines, `S read fds`, `U seen unreadable`. */
export function parseProcesses(payload: string): HostSample["processes"] {
  let read = 0;
  let fds = 0;
  let unreadable = 0;
  const worst: ProcessFds[] = [];
  const whole = (s: string | undefined, line: string) => {
    if (s === undefined || !/^\d+$/.test(s))
      throw new StatusParseError(`unexpected line in the process table: ${JSON.stringify(line)}`);
    return Number(s);
  };
  for (const line of payload.split("\n")) {
    const f = line.split(" ");
    if (f[0] === "S" && f.length === 3) {
      whole(f[1], line);
      whole(f[2], line);
      read = Number(f[1]);
      fds = Number(f[2]);
    } else if (f[0] === "U" && f.length === 3) {
      unreadable = Number(f[2]);
    } else if (f[0] === "P" && f.length >= 6) {
      const hard = Number(f[5]);
      worst.push({
        pid: whole(f[2], line),
        fds: whole(f[3], line),
        soft: whole(f[4], line),
        hard: Number.isFinite(hard) ? hard : null,
        name: f.slice(6).join(" "),
      });
    } else if (line.trim() !== "") {
      throw new StatusParseError(`unexpected line in the process table: ${JSON.stringify(line)}`);
    }
  }
  return { read, fds, unreadable, worst };
}

interface SocketLines {
  byState: Record<string, number>;
  destinations: Destination[];
  listeners: Array<{ endpoint: string; port: number; acceptQueue: number }>;
  synRecv: Map<string, number>;
}

/** The aggregated /proc/net/tcp{,6} lines: L (listener), T (state count), O (destination), Y (SYN_RECV). */
export function parseSocketLines(payload: string, littleEndian: boolean): SocketLines {
  const out: SocketLines = { byState: {}, destinations: [], listeners: [], synRecv: new Map() };
  const merged = new Map<string, Destination>();
  for (const line of payload.split("\n")) {
    if (line.trim() === "") continue;
    const f = line.split(" ");
    const bad = () => new StatusParseError(`unexpected line in the socket table: ${JSON.stringify(line)}`);
    const count = (s: string | undefined) => {
      if (s === undefined || !/^\d+$/.test(s)) throw bad();
      return Number(s);
    };
    const endpoint = (hex: string | undefined) => {
      const e = hex === undefined ? null : decodeEndpoint(hex, littleEndian);
      if (!e) throw bad();
      return e;
    };
    switch (f[0]) {
      case "L": {
        const e = endpoint(f[1]);
        if (f[2] === undefined || !/^[0-9A-Fa-f]+$/.test(f[2])) throw bad();
        out.listeners.push({ endpoint: e.name, port: e.port, acceptQueue: parseInt(f[2], 16) });
        break;
      }
      case "T":
        out.byState[TCP_STATES[f[1] ?? ""] ?? `state ${f[1]}`] = count(f[2]);
        break;
      case "O": {
        // The same destination can come from tcp and tcp6 (an IPv4-mapped address): one entry.
        const e = endpoint(f[1]);
        const d = merged.get(e.name) ?? { endpoint: e.name, sockets: 0, timeWait: 0, sources: 0 };
        d.sockets += count(f[2]);
        d.timeWait += count(f[3]);
        d.sources = Math.max(d.sources, count(f[4]));
        merged.set(e.name, d);
        break;
      }
      case "Y": {
        const e = endpoint(f[1]);
        out.synRecv.set(e.name, (out.synRecv.get(e.name) ?? 0) + count(f[2]));
        break;
      }
      default:
        throw bad();
    }
  }
  out.destinations = [...merged.values()];
  return out;
}

/** `TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1`. */
export function parseSockstat(payload: string): { tw?: number; orphan?: number } {
  const line = payload.split("\n").find((l) => l.startsWith("TCP:"));
  if (!line) return {};
  const f = line.split(/\s+/);
  const field = (name: string) => {
    const i = f.indexOf(name);
    const v = i >= 0 ? Number(f[i + 1]) : NaN;
    return Number.isInteger(v) ? v : undefined;
  };
  const out: { tw?: number; orphan?: number } = {};
  const tw = field("tw");
  const orphan = field("orphan");
  if (tw !== undefined) out.tw = tw;
  if (orphan !== undefined) out.orphan = orphan;
  return out;
}

/** `ss -ltn`: Recv-Q of a listener is its accept queue now, Send-Q the backlog it got. */
export function parseSsListenQueues(payload: string): Array<Omit<ListenerQueue, "synQueue">> {
  const out: Array<Omit<ListenerQueue, "synQueue">> = [];
  for (const line of payload.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[0] === "" || cols[0] === "State") continue;
    const [state, recvQ, sendQ, local] = cols;
    const m = local === undefined ? null : /^(.*):(\d{1,5})$/.exec(local);
    if (state !== "LISTEN" || !/^\d+$/.test(recvQ ?? "") || !/^\d+$/.test(sendQ ?? "") || !m) {
      throw new StatusParseError(`unexpected line from ss -ltn: ${JSON.stringify(line)}`);
    }
    out.push({ endpoint: local!, port: Number(m[2]), acceptQueue: Number(recvQ), backlog: Number(sendQ) });
  }
  return out;
}

/** `K established keepalive idle idleWithKeepalive` and `I idleMs keepalive local peer` lines. */
export function parseKeepalive(payload: string, sysctl: HostSample["sysctl"]): KeepaliveSample {
  const n = (k: (typeof STATUS_SYSCTLS)[number]) => Number(sysctl[k] ?? NaN);
  const detectionSeconds =
    n("net/ipv4/tcp_keepalive_time") + n("net/ipv4/tcp_keepalive_intvl") * n("net/ipv4/tcp_keepalive_probes");
  const out: KeepaliveSample = {
    detectionSeconds,
    established: 0,
    withKeepalive: 0,
    idle: 0,
    idleWithKeepalive: 0,
    longestIdle: [],
  };
  let sawTotals = false;
  for (const line of payload.split("\n")) {
    const f = line.split(" ");
    if (f[0] === "K" && f.length === 5 && f.slice(1).every((v) => /^\d+$/.test(v))) {
      [out.established, out.withKeepalive, out.idle, out.idleWithKeepalive] = f.slice(1).map(Number) as [
        number,
        number,
        number,
        number,
      ];
      sawTotals = true;
    } else if (f[0] === "I" && f.length === 5 && /^\d+$/.test(f[1]!)) {
      out.longestIdle.push({ idleSeconds: Number(f[1]) / 1000, keepalive: f[2] === "1", local: f[3]!, peer: f[4]! });
    } else if (line.trim() !== "") {
      throw new StatusParseError(`unexpected line in the keepalive scan: ${JSON.stringify(line)}`);
    }
  }
  if (!sawTotals) throw new StatusParseError("the keepalive scan printed no totals");
  return out;
}

/** TcpExt of /proc/net/netstat: a header line of names, then a line of values. */
export function parseNetstat(payload: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = payload.split("\n");
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/);
    if (names[0] !== values[0] || names[0] !== "TcpExt:") continue;
    names.slice(1).forEach((name, j) => {
      const v = Number(values[j + 1]);
      if (Number.isFinite(v)) out.set(name, v);
    });
  }
  return out;
}

function netstatIncrease(before: string, after: string): HostSample["netstat"] {
  const a = parseNetstat(before);
  const b = parseNetstat(after);
  const out = {} as HostSample["netstat"];
  for (const c of NETSTAT_COUNTERS) {
    const x = a.get(c);
    const y = b.get(c);
    out[c] = x === undefined || y === undefined ? null : Math.max(0, y - x);
  }
  return out;
}

/** /proc/net/stat/nf_conntrack: a header of names, then one row of hex values per CPU; summed. */
export function parseConntrackStat(payload: string): Map<string, number> {
  const lines = payload.split("\n").filter((l) => l.trim() !== "");
  const names = (lines[0] ?? "").trim().split(/\s+/);
  const sums = new Map<string, number>();
  for (const row of lines.slice(1)) {
    const values = row.trim().split(/\s+/);
    if (values.length !== names.length || !values.every((v) => /^[0-9a-fA-F]+$/.test(v)))
      throw new StatusParseError(`unexpected row in /proc/net/stat/nf_conntrack: ${JSON.stringify(row)}`);
    names.forEach((name, i) => sums.set(name, (sums.get(name) ?? 0) + parseInt(values[i]!, 16)));
  }
  return sums;
}

function conntrackIncrease(before: RemoteRecord, after: RemoteRecord): HostSample["conntrack"] {
  if (before.status !== "ok" || after.status !== "ok") return null;
  const a = parseConntrackStat(before.payload);
  const b = parseConntrackStat(after.payload);
  const out = {} as Record<ConntrackCounter, number>;
  // Per-CPU counters are 32-bit and may wrap; an increase below 0 is a wrap, counted as 0.
  for (const c of CONNTRACK_COUNTERS) out[c] = Math.max(0, (b.get(c) ?? 0) - (a.get(c) ?? 0));
  return out;
}
