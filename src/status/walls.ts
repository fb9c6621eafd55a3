import type { HostSample } from "./sample.js";

/**
 * Judges one host's sample: for each wall the roles move, how much is used of what limit, who uses
 * it most, and a verdict. A drop counter rising during the window is critical whatever the
 * percentages say: connections are being lost now.
 */

export const WALL_IDS = [
  "open-files",
  "file-table",
  "ephemeral-ports",
  "time-wait",
  "orphans",
  "listen-queues",
  "conntrack",
  "keepalive",
] as const;
export type WallId = (typeof WALL_IDS)[number];

/** The role that moves each wall, and what it is, for the text output. */
export const WALL_INFO: Record<WallId, { role: string; what: string }> = {
  "open-files": { role: "fd-limits", what: "open fds of the process closest to its soft nofile" },
  "file-table": { role: "fd-limits", what: "open files system-wide vs fs.file-max" },
  "ephemeral-ports": {
    role: "ephemeral-ports",
    what: "local ports to the busiest destination vs usable range × source addresses",
  },
  "time-wait": { role: "tw-reuse", what: "TIME_WAIT sockets vs tcp_max_tw_buckets" },
  orphans: { role: "tw-reuse", what: "orphaned sockets vs tcp_max_orphans" },
  "listen-queues": { role: "syn-backlog", what: "the fullest listener's accept or SYN queue vs its backlog" },
  conntrack: { role: "conntrack", what: "conntrack entries vs nf_conntrack_max" },
  keepalive: {
    role: "keepalive",
    what: "established connections that received nothing for longer than keepalive detects a dead peer",
  },
};

export type Verdict = "ok" | "warn" | "critical";
export const VERDICT_RANK: Record<Verdict, number> = { ok: 0, warn: 1, critical: 2 };

export interface Threshold {
  warn: number;
  critical: number;
}
export type Thresholds = Record<WallId, Threshold>;
export const DEFAULT_THRESHOLD: Threshold = { warn: 70, critical: 90 };

export interface Consumer {
  /** A process `nginx[1234]`, a destination `198.18.0.3:443`, a listener `0.0.0.0:80`. */
  name: string;
  used: number;
  limit: number | null;
  percent: number | null;
  /** What `used` counts, where it is not what the wall counts: "s idle". */
  unit?: string;
  detail?: string;
}

export interface Wall {
  wall: WallId;
  used: number | null;
  limit: number | null;
  percent: number | null;
  verdict: Verdict;
  /** Why warn or critical, when the percentage alone doesn't say it. */
  reason?: string;
  consumers: Consumer[];
  /** Increase of each drop counter over the window; null: this kernel has no such counter. */
  increase?: Record<string, number | null>;
  /** What could not be read, or why there is no number. */
  note?: string;
  hint?: true;
}

/** Consumers kept per wall. */
export const CONSUMERS_KEPT = 5;

export function judgeHost(sample: HostSample, thresholds: Thresholds): Wall[] {
  const walls = [
    openFiles(sample),
    fileTable(sample),
    ephemeralPorts(sample),
    timeWait(sample),
    orphans(sample),
    listenQueues(sample),
    conntrack(sample),
    keepalive(sample),
  ];
  return walls.map((w) => withVerdict(w, thresholds[w.wall]));
}

/** The wall nearest to being hit: critical first, then the highest percentage. Hints never. */
export function closestWall(walls: readonly Wall[]): Wall | null {
  let best: Wall | null = null;
  for (const w of walls) {
    if (w.hint || (w.percent === null && w.verdict === "ok")) continue;
    if (!best || severity(w) > severity(best)) best = w;
  }
  return best;
}

function severity(w: Wall): number {
  return VERDICT_RANK[w.verdict] * 1000 + (w.percent ?? 0);
}

export function worstVerdict(walls: readonly Wall[]): Verdict {
  return walls.reduce<Verdict>((v, w) => (VERDICT_RANK[w.verdict] > VERDICT_RANK[v] ? w.verdict : v), "ok");
}

type Unjudged = Omit<Wall, "verdict"> & { raised?: { verdict: Verdict; reason: string } };

function withVerdict(w: Unjudged, t: Threshold): Wall {
  const { raised, ...wall } = w;
  let verdict: Verdict = "ok";
  let reason: string | undefined;
  if (w.percent !== null && w.percent >= t.critical) verdict = "critical";
  else if (w.percent !== null && w.percent >= t.warn) verdict = "warn";
  // A rising drop counter says more than a percentage of the same verdict: it is shown instead.
  if (raised && VERDICT_RANK[raised.verdict] >= VERDICT_RANK[verdict]) {
    verdict = raised.verdict;
    reason = raised.reason;
  }
  if (w.hint && verdict === "critical") verdict = "warn";
  return { ...wall, verdict, ...(reason !== undefined ? { reason } : {}) };
}

export function percentOf(used: number, limit: number | null): number | null {
  if (limit === null || !(limit > 0)) return null;
  return Math.round((used / limit) * 1000) / 10;
}

function numberOf(text: string | undefined): number | null {
  const v = Number((text ?? "").trim().split(/\s+/)[0]);
  return text !== undefined && Number.isFinite(v) ? v : null;
}

function openFiles(s: HostSample): Unjudged {
  const consumers = s.processes.worst.slice(0, CONSUMERS_KEPT).map((p) => ({
    name: `${p.name}[${p.pid}]`,
    used: p.fds,
    limit: p.soft,
    percent: percentOf(p.fds, p.soft),
    ...(p.hard !== null && p.hard !== p.soft ? { detail: `hard limit ${p.hard}` } : {}),
  }));
  const worst = consumers[0];
  const note =
    s.processes.unreadable > 0
      ? `${s.processes.unreadable} processes' open files could not be read (another user's): run with become to see every process`
      : undefined;
  return {
    wall: "open-files",
    used: worst?.used ?? null,
    limit: worst?.limit ?? null,
    percent: worst?.percent ?? null,
    consumers,
    ...(note ? { note } : {}),
  };
}

function fileTable(s: HostSample): Unjudged {
  const used = numberOf(s.sysctl["fs/file-nr"]);
  const limit = numberOf(s.sysctl["fs/file-max"]);
  return {
    wall: "file-table",
    used,
    limit,
    percent: used === null ? null : percentOf(used, limit),
    consumers: [],
  };
}

/** Ports of the range an automatic bind may pick: the range less the reserved ports in it. */
export function usablePorts(s: Pick<HostSample, "portRange" | "reservedPorts">): number | null {
  const r = s.portRange;
  if (!r || r.to < r.from) return null;
  let reserved = 0;
  for (const p of s.reservedPorts) reserved += Math.max(0, Math.min(p.to, r.to) - Math.max(p.from, r.from) + 1);
  return r.to - r.from + 1 - reserved;
}

function ephemeralPorts(s: HostSample): Unjudged {
  const usable = usablePorts(s);
  const consumers = s.destinations
    .map((d) => {
      const limit = usable === null ? null : usable * Math.max(1, d.sources);
      const details = [`${d.timeWait} in TIME_WAIT`];
      if (d.sources > 1) details.push(`from ${d.sources} source addresses`);
      return {
        name: d.endpoint,
        used: d.sockets,
        limit,
        percent: percentOf(d.sockets, limit),
        detail: details.join(", "),
      };
    })
    .sort((a, b) => (b.percent ?? 0) - (a.percent ?? 0) || b.used - a.used || a.name.localeCompare(b.name))
    .slice(0, CONSUMERS_KEPT);
  const worst = consumers[0];
  return {
    wall: "ephemeral-ports",
    used: worst?.used ?? 0,
    limit: worst?.limit ?? usable,
    // Every port of the range reserved: no outbound connection can get a port at all.
    percent: usable === 0 ? 100 : worst ? worst.percent : percentOf(0, usable),
    consumers,
    ...(usable === null ? { note: "net.ipv4.ip_local_port_range could not be read" } : {}),
    ...(usable === 0 ? { note: "every port of ip_local_port_range is in ip_local_reserved_ports" } : {}),
  };
}

function timeWait(s: HostSample): Unjudged {
  const limit = numberOf(s.sysctl["net/ipv4/tcp_max_tw_buckets"]);
  const consumers = s.destinations
    .filter((d) => d.timeWait > 0)
    .sort((a, b) => b.timeWait - a.timeWait || a.endpoint.localeCompare(b.endpoint))
    .slice(0, CONSUMERS_KEPT)
    .map((d) => ({ name: d.endpoint, used: d.timeWait, limit: null, percent: null }));
  return {
    wall: "time-wait",
    used: s.timeWait,
    limit,
    percent: s.timeWait === null ? null : percentOf(s.timeWait, limit),
    consumers,
  };
}

function orphans(s: HostSample): Unjudged {
  const limit = numberOf(s.sysctl["net/ipv4/tcp_max_orphans"]);
  return {
    wall: "orphans",
    used: s.orphans,
    limit,
    percent: s.orphans === null ? null : percentOf(s.orphans, limit),
    consumers: [],
    // It is a global sysctl, which a network namespace (a container) does not show.
    ...(limit === null ? { note: "net.ipv4.tcp_max_orphans is not visible here (a container?)" } : {}),
  };
}

function listenQueues(s: HostSample): Unjudged {
  // The kernel queues one connection more than the backlog for accept() (full when the queue
  // exceeds it), and refuses SYNs once the SYN queue reaches it.
  const consumers = s.listeners
    .map((l) => {
      const accept = { used: l.acceptQueue, limit: l.backlog === null ? null : l.backlog + 1 };
      const syn = { used: l.synQueue, limit: l.backlog };
      const fuller = (percentOf(syn.used, syn.limit) ?? 0) > (percentOf(accept.used, accept.limit) ?? 0) ? syn : accept;
      return {
        name: l.endpoint,
        used: fuller.used,
        limit: fuller.limit,
        percent: percentOf(fuller.used, fuller.limit),
        detail: `${fuller === syn ? "SYN" : "accept"} queue; backlog ${l.backlog ?? "unknown"}, ${l.acceptQueue} waiting for accept(), ${l.synQueue} half-open`,
      };
    })
    .sort((a, b) => (b.percent ?? 0) - (a.percent ?? 0) || b.used - a.used || a.name.localeCompare(b.name))
    .slice(0, CONSUMERS_KEPT);
  const worst = consumers[0];
  const rising = Object.entries(s.netstat).filter(([, v]) => v !== null && v > 0);
  const raised =
    rising.length > 0
      ? {
          verdict: "critical" as const,
          reason: `${rising.map(([k, v]) => `${k} +${v}`).join(", ")} in ${s.windowSeconds.toFixed(1)} s: connections are being dropped now`,
        }
      : undefined;
  return {
    wall: "listen-queues",
    used: worst?.used ?? null,
    limit: worst?.limit ?? null,
    percent: worst?.percent ?? null,
    consumers,
    increase: { ...s.netstat },
    ...(s.listeners.some((l) => l.backlog === null)
      ? { note: "ss is not installed (package iproute2): backlogs unknown, queues shown without them" }
      : {}),
    ...(raised ? { raised } : {}),
  };
}

function conntrack(s: HostSample): Unjudged {
  const used = numberOf(s.sysctl["net/netfilter/nf_conntrack_count"]);
  const limit = numberOf(s.sysctl["net/netfilter/nf_conntrack_max"]);
  if (used === null)
    return {
      wall: "conntrack",
      used: null,
      limit: null,
      percent: null,
      consumers: [],
      note: "nf_conntrack is not loaded: there is no table to fill",
    };
  const inc = s.conntrack;
  const dropping = inc ? (["drop", "insert_failed"] as const).filter((c) => inc[c] > 0) : [];
  const window = `in ${s.windowSeconds.toFixed(1)} s`;
  const raised =
    inc && dropping.length > 0
      ? {
          verdict: "critical" as const,
          reason: `${dropping.map((c) => `${c} +${inc[c]}`).join(", ")} ${window}: new connections are being dropped now`,
        }
      : inc && inc.early_drop > 0
        ? {
            verdict: "warn" as const,
            reason: `early_drop +${inc.early_drop} ${window}: the table is full and evicts unreplied entries`,
          }
        : undefined;
  return {
    wall: "conntrack",
    used,
    limit,
    percent: percentOf(used, limit),
    consumers: [],
    ...(inc ? { increase: { ...inc } } : { note: "/proc/net/stat/nf_conntrack is absent: drops not counted" }),
    ...(raised ? { raised } : {}),
  };
}

function keepalive(s: HostSample): Unjudged {
  const k = s.keepalive;
  if (!k)
    return {
      wall: "keepalive",
      used: null,
      limit: null,
      percent: null,
      consumers: [],
      hint: true,
      note: "ss is not installed (package iproute2): idle connections not counted",
    };
  return {
    wall: "keepalive",
    used: k.idle,
    limit: k.established,
    percent: k.established === 0 ? 0 : percentOf(k.idle, k.established),
    consumers: k.longestIdle
      .filter((i) => i.idleSeconds > k.detectionSeconds)
      .map((i) => ({
        name: `${i.local} → ${i.peer}`,
        used: Math.round(i.idleSeconds),
        limit: null,
        percent: null,
        unit: "s idle",
        detail: `keepalive ${i.keepalive ? "on" : "off"}`,
      })),
    hint: true,
    ...(k.idle > 0
      ? {
          note: `${k.idle - k.idleWithKeepalive} of them without SO_KEEPALIVE: a dead peer there is never noticed (detection ${k.detectionSeconds} s)`,
        }
      : {}),
  };
}
