import { describe, expect, it } from "vitest";
import type { HostSample } from "../../src/status/sample.js";
import { ThresholdError, thresholdsFrom } from "../../src/status/thresholds.js";
import {
  closestWall,
  CONSUMERS_KEPT,
  DEFAULT_THRESHOLD,
  judgeHost,
  percentOf,
  usablePorts,
  WALL_IDS,
  worstVerdict,
  type Thresholds,
  type Verdict,
  type Wall,
  type WallId,
} from "../../src/status/walls.js";
import { hostSample, withSysctls } from "./_status.js";

const DEFAULTS: Thresholds = thresholdsFrom([], []);

function wallOf(sample: HostSample, wall: WallId, thresholds: Thresholds = DEFAULTS): Wall {
  const w = judgeHost(sample, thresholds).find((x) => x.wall === wall);
  if (!w) throw new Error(`no ${wall} wall`);
  return w;
}

const process = (fds: number, soft: number, hard: number | null = soft, pid = 1234, name = "nginx") => ({
  pid,
  name,
  fds,
  soft,
  hard,
});
const destination = (endpoint: string, sockets: number, timeWait = 0, sources = 1) => ({
  endpoint,
  sockets,
  timeWait,
  sources,
});
const listener = (endpoint: string, acceptQueue: number, backlog: number | null, synQueue = 0) => ({
  endpoint,
  port: Number(endpoint.slice(endpoint.lastIndexOf(":") + 1)),
  acceptQueue,
  backlog,
  synQueue,
});
const quiet = { ListenOverflows: 0, ListenDrops: 0, TCPBacklogDrop: 0, TCPReqQFullDrop: 0 };

describe("judgeHost: a host at rest", () => {
  it("judges every wall once, in the documented order, all ok", () => {
    const walls = judgeHost(hostSample(), DEFAULTS);
    expect(walls.map((w) => w.wall)).toEqual([...WALL_IDS]);
    expect(walls.map((w) => w.verdict)).toEqual(WALL_IDS.map(() => "ok"));
    expect(walls.every((w) => w.reason === undefined)).toBe(true);
    expect(worstVerdict(walls)).toBe("ok");
  });

  it("measures each wall against its own limit", () => {
    const byWall = Object.fromEntries(
      judgeHost(hostSample(), DEFAULTS).map((w) => [w.wall, [w.used, w.limit, w.percent]]),
    );
    expect(byWall).toEqual({
      "open-files": [100, 1024, 9.8],
      "file-table": [1000, 100000, 1],
      "ephemeral-ports": [100, 28232, 0.4],
      "time-wait": [100, 131072, 0.1],
      orphans: [0, 131072, 0],
      "listen-queues": [0, 512, 0],
      conntrack: [1000, 262144, 0.4],
      keepalive: [0, 10, 0],
    });
  });
});

describe("percentOf", () => {
  it.each<[number, number | null, number | null]>([
    [901, 1000, 90.1],
    [1, 3, 33.3],
    [2, 3, 66.7],
    [0, 10, 0],
    [12, 10, 120],
    [5, 0, null],
    [5, null, null],
    [5, -1, null],
  ])("%d of %s is %s %", (used, limit, percent) => {
    expect(percentOf(used, limit)).toBe(percent);
  });
});

describe("verdicts by percentage", () => {
  /** Every wall with a percentage, driven to `used` of 1000 by the sample it reads. */
  const fill: Record<
    Exclude<WallId, "keepalive" | "listen-queues" | "ephemeral-ports">,
    (used: number) => HostSample
  > = {
    "open-files": (used) =>
      hostSample({ processes: { read: 1, fds: used, unreadable: 0, worst: [process(used, 1000)] } }),
    "file-table": (used) => withSysctls({ "fs/file-nr": `${used}\t0\t1000`, "fs/file-max": "1000" }),
    "time-wait": (used) => withSysctls({ "net/ipv4/tcp_max_tw_buckets": "1000" }, { timeWait: used }),
    orphans: (used) => withSysctls({ "net/ipv4/tcp_max_orphans": "1000" }, { orphans: used }),
    conntrack: (used) =>
      withSysctls({ "net/netfilter/nf_conntrack_count": String(used), "net/netfilter/nf_conntrack_max": "1000" }),
  };

  const cases: Array<[number, Verdict]> = [
    [0, "ok"],
    [699, "ok"],
    [700, "warn"],
    [899, "warn"],
    [900, "critical"],
    [1000, "critical"],
  ];
  for (const [wall, sample] of Object.entries(fill) as Array<[WallId, (used: number) => HostSample]>) {
    it.each(cases)(`${wall}: %d of 1000 is %s with warn 70 / critical 90`, (used, verdict) => {
      const w = wallOf(sample(used), wall);
      expect([w.used, w.limit, w.percent, w.verdict]).toEqual([used, 1000, used / 10, verdict]);
      expect(w.reason).toBeUndefined();
    });
  }

  it.each<[string, string[], string[], WallId, number, Verdict]>([
    ["a lower global warn", ["50"], [], "file-table", 600, "warn"],
    ["a lower global critical (and warn)", ["50"], ["60"], "file-table", 600, "critical"],
    ["a wall's own warn", ["file-table=50"], [], "file-table", 600, "warn"],
    ["another wall's warn does not apply", ["open-files=50"], [], "file-table", 600, "ok"],
    ["a wall's own critical above the default", [], ["file-table=99"], "file-table", 950, "warn"],
    ["a wall's own warn beats the global one", ["50", "file-table=80"], [], "file-table", 700, "ok"],
    ["thresholds are inclusive", ["60"], ["61.5"], "file-table", 615, "critical"],
  ])("%s", (_what, warn, critical, wall, used, verdict) => {
    expect(wallOf(fill[wall as keyof typeof fill](used), wall, thresholdsFrom(warn, critical)).verdict).toBe(verdict);
  });
});

describe("open-files", () => {
  it("is the process closest to its soft limit, with up to 5 processes as consumers", () => {
    const worst = [
      process(950, 1024, 4096, 10, "nginx: worker process"),
      process(800, 1024, 1024, 11, "redis-server"),
      process(50, 1024, 1024, 12, "a"),
      process(40, 1024, 1024, 13, "b"),
      process(30, 1024, 1024, 14, "c"),
      process(20, 1024, 1024, 15, "d"),
    ];
    const w = wallOf(hostSample({ processes: { read: 6, fds: 1890, unreadable: 0, worst } }), "open-files");
    expect(w).toMatchObject({ used: 950, limit: 1024, percent: 92.8, verdict: "critical" });
    expect(w.consumers).toHaveLength(CONSUMERS_KEPT);
    expect(w.consumers[0]).toEqual({
      name: "nginx: worker process[10]",
      used: 950,
      limit: 1024,
      percent: 92.8,
      detail: "hard limit 4096",
    });
    // Same soft and hard limit: no detail.
    expect(w.consumers[1]).toEqual({ name: "redis-server[11]", used: 800, limit: 1024, percent: 78.1 });
    expect(w.note).toBeUndefined();
  });

  it("says how many processes could not be read", () => {
    const w = wallOf(
      hostSample({ processes: { read: 3, fds: 30, unreadable: 42, worst: [process(10, 1024)] } }),
      "open-files",
    );
    expect(w.note).toMatch(/^42 processes' open files could not be read/);
    expect(w.note).toContain("become");
  });

  it("has no number when no process was listed", () => {
    const w = wallOf(hostSample({ processes: { read: 0, fds: 0, unreadable: 0, worst: [] } }), "open-files");
    expect(w).toMatchObject({ used: null, limit: null, percent: null, verdict: "ok", consumers: [] });
  });
});

describe("file-table", () => {
  it.each<
    [
      string,
      Partial<Record<keyof HostSample["sysctl"], string | undefined>>,
      [number | null, number | null, number | null],
    ]
  >([
    [
      "file-nr's first field against file-max",
      { "fs/file-nr": "9000\t0\t10000", "fs/file-max": "10000" },
      [9000, 10000, 90],
    ],
    [
      "a file-max of 2^63-1 is far away",
      { "fs/file-nr": "9000\t0\t1", "fs/file-max": "9223372036854775807" },
      [9000, Number("9223372036854775807"), 0],
    ],
    ["no file-nr", { "fs/file-nr": undefined }, [null, 100000, null]],
    ["no file-max", { "fs/file-max": undefined }, [1000, null, null]],
    ["a file-nr that is not a number", { "fs/file-nr": "x" }, [null, 100000, null]],
  ])("%s", (_what, sysctls, expected) => {
    const w = wallOf(withSysctls(sysctls), "file-table");
    expect([w.used, w.limit, w.percent]).toEqual(expected);
  });
});

describe("usablePorts", () => {
  const range = { from: 32768, to: 60999 };
  it.each<[string, HostSample["portRange"], HostSample["reservedPorts"], number | null]>([
    ["the kernel's default range", range, [], 28232],
    ["a reserved port below the range does not count", range, [{ from: 8080, to: 8080 }], 28232],
    ["a reserved port above the range does not count", range, [{ from: 61000, to: 65535 }], 28232],
    ["ten reserved ports inside", range, [{ from: 40000, to: 40009 }], 28222],
    ["a reserved range across the start counts its part inside", range, [{ from: 30000, to: 32770 }], 28229],
    ["a reserved range across the end counts its part inside", range, [{ from: 60990, to: 61010 }], 28222],
    [
      "several ranges, inside and out",
      range,
      [
        { from: 0, to: 0 },
        { from: 22, to: 22 },
        { from: 32768, to: 32768 },
        { from: 50000, to: 50001 },
        { from: 60999, to: 60999 },
      ],
      28228,
    ],
    ["the whole range reserved", range, [{ from: 1024, to: 65535 }], 0],
    ["a one-port range", { from: 40000, to: 40000 }, [], 1],
    [
      "1024-65535",
      { from: 1024, to: 65535 },
      [
        { from: 8080, to: 8080 },
        { from: 9000, to: 9010 },
      ],
      64512 - 12,
    ],
    ["no range read", null, [], null],
    ["a range whose end is below its start", { from: 60999, to: 32768 }, [], null],
  ])("%s", (_what, portRange, reservedPorts, expected) => {
    expect(usablePorts({ portRange, reservedPorts })).toBe(expected);
  });
});

describe("ephemeral-ports", () => {
  it.each<[string, Partial<HostSample>, Pick<Wall, "used" | "limit" | "percent" | "verdict">]>([
    [
      "the busiest destination against the usable range",
      { destinations: [destination("198.18.0.3:5201", 20000, 5000)] },
      { used: 20000, limit: 28232, percent: 70.8, verdict: "warn" },
    ],
    [
      "two source addresses double the limit",
      { destinations: [destination("198.18.0.3:5201", 20000, 5000, 2)] },
      { used: 20000, limit: 56464, percent: 35.4, verdict: "ok" },
    ],
    [
      "reserved ports inside the range lower it",
      {
        destinations: [destination("198.18.0.3:5201", 900)],
        portRange: { from: 40000, to: 40999 },
        reservedPorts: [{ from: 40000, to: 40099 }],
      },
      { used: 900, limit: 900, percent: 100, verdict: "critical" },
    ],
    [
      "reserved ports outside the range do not",
      {
        destinations: [destination("198.18.0.3:5201", 900)],
        portRange: { from: 40000, to: 40999 },
        reservedPorts: [{ from: 8080, to: 8080 }],
      },
      { used: 900, limit: 1000, percent: 90, verdict: "critical" },
    ],
    ["no destination at all", { destinations: [] }, { used: 0, limit: 28232, percent: 0, verdict: "ok" }],
    [
      "no port range read",
      { destinations: [destination("198.18.0.3:5201", 9000)], portRange: null },
      { used: 9000, limit: null, percent: null, verdict: "ok" },
    ],
  ])("%s", (_what, over, expected) => {
    expect(wallOf(hostSample(over), "ephemeral-ports")).toMatchObject(expected);
  });

  it("ranks destinations by their share of their own limit, not by socket count", () => {
    const w = wallOf(
      hostSample({
        portRange: { from: 1024, to: 2023 },
        destinations: [
          destination("10.0.0.1:80", 1200, 0, 4), // 30 %
          destination("10.0.0.2:80", 600, 300, 1), // 60 %
          destination("10.0.0.9:80", 100, 0, 1), // 10 %
          destination("10.0.0.3:80", 100, 0, 1), // 10 %, as many sockets: before 10.0.0.9 by name
          destination("10.0.0.4:80", 50),
          destination("10.0.0.5:80", 40),
          destination("10.0.0.6:80", 30),
        ],
      }),
      "ephemeral-ports",
    );
    expect(w.consumers.map((c) => [c.name, c.percent])).toEqual([
      ["10.0.0.2:80", 60],
      ["10.0.0.1:80", 30],
      ["10.0.0.3:80", 10],
      ["10.0.0.9:80", 10],
      ["10.0.0.4:80", 5],
    ]);
    expect([w.used, w.limit, w.percent]).toEqual([600, 1000, 60]);
    expect(w.consumers[0]!.detail).toBe("300 in TIME_WAIT");
    expect(w.consumers[1]!.detail).toBe("0 in TIME_WAIT, from 4 source addresses");
    expect(w.consumers[1]!.limit).toBe(4000);
  });

  it("notes a port range it could not read", () => {
    expect(wallOf(hostSample({ portRange: null }), "ephemeral-ports").note).toMatch(/ip_local_port_range/);
    expect(wallOf(hostSample(), "ephemeral-ports").note).toBeUndefined();
  });
});

describe("time-wait and orphans", () => {
  it("lists the destinations with the most TIME_WAIT sockets", () => {
    const w = wallOf(
      hostSample({
        timeWait: 700,
        destinations: [
          destination("10.0.0.1:80", 500, 100),
          destination("10.0.0.2:80", 500, 600),
          destination("10.0.0.3:80", 5, 0),
        ],
      }),
      "time-wait",
    );
    expect(w.consumers.map((c) => [c.name, c.used])).toEqual([
      ["10.0.0.2:80", 600],
      ["10.0.0.1:80", 100],
    ]);
  });

  it("has no number when the kernel counted no TIME_WAIT anywhere", () => {
    expect(wallOf(hostSample({ timeWait: null }), "time-wait")).toMatchObject({
      used: null,
      percent: null,
      verdict: "ok",
    });
  });

  it("notes a tcp_max_orphans it cannot see (a container)", () => {
    const w = wallOf(withSysctls({ "net/ipv4/tcp_max_orphans": undefined }), "orphans");
    expect(w).toMatchObject({ used: 0, limit: null, percent: null, verdict: "ok" });
    expect(w.note).toMatch(/tcp_max_orphans/);
  });
});

describe("listen-queues", () => {
  it.each<[string, Partial<HostSample>, Partial<Wall> & { detail?: RegExp }]>([
    [
      // The accept queue holds backlog + 1 before it is full.
      "a full accept queue: backlog + 1 waiting",
      { listeners: [listener("0.0.0.0:80", 129, 128)] },
      {
        used: 129,
        limit: 129,
        percent: 100,
        verdict: "critical",
        detail: /^accept queue; backlog 128, 129 waiting for accept\(\), 0 half-open$/,
      },
    ],
    [
      "a SYN queue fuller than the accept queue",
      { listeners: [listener("0.0.0.0:80", 10, 128, 100)] },
      { used: 100, limit: 128, percent: 78.1, verdict: "warn", detail: /^SYN queue; / },
    ],
    [
      "the fullest of several listeners",
      {
        listeners: [listener("0.0.0.0:80", 1, 511), listener("127.0.0.1:6379", 15, 15), listener("[::]:443", 0, 4096)],
      },
      { used: 15, limit: 16, percent: 93.8, verdict: "critical" },
    ],
    [
      "a backlog of 0 still queues one",
      { listeners: [listener("0.0.0.0:80", 1, 0)] },
      { used: 1, limit: 1, percent: 100, verdict: "critical" },
    ],
    ["no listeners", { listeners: [] }, { used: null, limit: null, percent: null, verdict: "ok" }],
  ])("%s", (_what, over, expected) => {
    const { detail, ...wall } = expected;
    const w = wallOf(hostSample(over), "listen-queues");
    expect(w).toMatchObject(wall);
    if (detail) expect(w.consumers[0]!.detail).toMatch(detail);
    expect(w.reason).toBeUndefined();
  });

  it.each<[string, HostSample["netstat"], string]>([
    [
      "ListenOverflows",
      { ...quiet, ListenOverflows: 3 },
      "ListenOverflows +3 in 1.0 s: connections are being dropped now",
    ],
    [
      "ListenOverflows and ListenDrops",
      { ...quiet, ListenOverflows: 7, ListenDrops: 7 },
      "ListenOverflows +7, ListenDrops +7 in 1.0 s: connections are being dropped now",
    ],
    [
      "TCPBacklogDrop",
      { ...quiet, TCPBacklogDrop: 1 },
      "TCPBacklogDrop +1 in 1.0 s: connections are being dropped now",
    ],
    [
      "TCPReqQFullDrop on a kernel without TCPBacklogDrop",
      { ...quiet, TCPBacklogDrop: null, TCPReqQFullDrop: 2 },
      "TCPReqQFullDrop +2 in 1.0 s: connections are being dropped now",
    ],
  ])("a rising %s is critical at 0 %, with the reason", (_what, netstat, reason) => {
    const w = wallOf(hostSample({ netstat }), "listen-queues");
    expect(w).toMatchObject({ percent: 0, verdict: "critical", reason, increase: netstat });
  });

  it("says the window's length in the reason", () => {
    const w = wallOf(hostSample({ windowSeconds: 2.04, netstat: { ...quiet, ListenDrops: 1 } }), "listen-queues");
    expect(w.reason).toContain("in 2.0 s");
  });

  it("is critical with the reason even where a percentage would only warn", () => {
    const w = wallOf(
      hostSample({ listeners: [listener("0.0.0.0:80", 400, 511)], netstat: { ...quiet, ListenOverflows: 1 } }),
      "listen-queues",
    );
    expect(w.verdict).toBe("critical");
    expect(w.reason).toMatch(/^ListenOverflows \+1/);
  });

  it("stays ok with flat or missing counters", () => {
    const w = wallOf(
      hostSample({ netstat: { ListenOverflows: 0, ListenDrops: null, TCPBacklogDrop: null, TCPReqQFullDrop: null } }),
      "listen-queues",
    );
    expect(w.verdict).toBe("ok");
    expect(w.reason).toBeUndefined();
  });

  it("shows the queues without backlogs and says why when ss is missing", () => {
    const w = wallOf(hostSample({ listeners: [listener("0.0.0.0:80", 12, null)] }), "listen-queues");
    expect(w).toMatchObject({ used: 12, limit: null, percent: null, verdict: "ok" });
    expect(w.note).toMatch(/ss is not installed/);
    expect(w.consumers[0]!.detail).toContain("backlog unknown");
  });
});

describe("conntrack", () => {
  const counters = (drop: number, early_drop: number, insert_failed: number) => ({ drop, early_drop, insert_failed });
  const ct = (count: number, max: number, inc: HostSample["conntrack"]) =>
    withSysctls(
      { "net/netfilter/nf_conntrack_count": String(count), "net/netfilter/nf_conntrack_max": String(max) },
      { conntrack: inc },
    );

  it.each<[string, HostSample, Verdict, string | undefined]>([
    ["a quiet table", ct(100, 1000, counters(0, 0, 0)), "ok", undefined],
    [
      "drop rising: critical",
      ct(100, 1000, counters(5, 0, 0)),
      "critical",
      "drop +5 in 1.0 s: new connections are being dropped now",
    ],
    [
      "insert_failed rising: critical",
      ct(100, 1000, counters(0, 0, 2)),
      "critical",
      "insert_failed +2 in 1.0 s: new connections are being dropped now",
    ],
    [
      "both rising",
      ct(100, 1000, counters(1, 0, 2)),
      "critical",
      "drop +1, insert_failed +2 in 1.0 s: new connections are being dropped now",
    ],
    [
      "early_drop rising: warn only",
      ct(100, 1000, counters(0, 9, 0)),
      "warn",
      "early_drop +9 in 1.0 s: the table is full and evicts unreplied entries",
    ],
    [
      "drop wins over early_drop",
      ct(100, 1000, counters(1, 9, 0)),
      "critical",
      "drop +1 in 1.0 s: new connections are being dropped now",
    ],
    ["early_drop at a critical percentage stays critical", ct(950, 1000, counters(0, 9, 0)), "critical", undefined],
    [
      "early_drop at a warning percentage shows its reason",
      ct(750, 1000, counters(0, 9, 0)),
      "warn",
      "early_drop +9 in 1.0 s: the table is full and evicts unreplied entries",
    ],
  ])("%s", (_what, sample, verdict, reason) => {
    const w = wallOf(sample, "conntrack");
    expect(w.verdict).toBe(verdict);
    expect(w.reason).toBe(reason);
    expect(w.increase).toEqual(sample.conntrack);
  });

  it("is ok, without a number, and says so when nf_conntrack is not loaded", () => {
    const sample = withSysctls(
      { "net/netfilter/nf_conntrack_count": undefined, "net/netfilter/nf_conntrack_max": undefined },
      { conntrack: null },
    );
    const w = wallOf(sample, "conntrack");
    expect(w).toMatchObject({ used: null, limit: null, percent: null, verdict: "ok", consumers: [] });
    expect(w.note).toMatch(/nf_conntrack is not loaded/);
    expect(closestWall([w])).toBeNull();
  });

  it("counts entries but notes the missing drop counters when /proc/net/stat/nf_conntrack is absent", () => {
    const w = wallOf(ct(500, 1000, null), "conntrack");
    expect(w).toMatchObject({ used: 500, limit: 1000, percent: 50, verdict: "ok" });
    expect(w.increase).toBeUndefined();
    expect(w.note).toMatch(/\/proc\/net\/stat\/nf_conntrack is absent/);
  });
});

describe("keepalive", () => {
  const idle = (established: number, idleCount: number, withKeepalive = 0) => ({
    detectionSeconds: 7875,
    established,
    withKeepalive,
    idle: idleCount,
    idleWithKeepalive: withKeepalive,
    longestIdle: [
      { idleSeconds: 90000.4, keepalive: false, local: "10.0.0.5:43210", peer: "198.18.0.3:5201" },
      { idleSeconds: 8000, keepalive: true, local: "10.0.0.5:43211", peer: "198.18.0.3:5201" },
      { idleSeconds: 100, keepalive: false, local: "10.0.0.5:43212", peer: "198.18.0.3:5201" },
    ],
  });

  it.each<[number, number, Verdict]>([
    [100, 0, "ok"],
    [100, 69, "ok"],
    [100, 70, "warn"],
    [100, 95, "warn"],
    [100, 100, "warn"],
  ])("of %d established, %d idle past detection is %s, never critical", (established, idleCount, verdict) => {
    const w = wallOf(hostSample({ keepalive: idle(established, idleCount) }), "keepalive");
    expect(w.verdict).toBe(verdict);
    expect(w.hint).toBe(true);
  });

  it("is never the closest wall, even when it is the fullest", () => {
    const walls = judgeHost(hostSample({ keepalive: idle(100, 100) }), DEFAULTS);
    expect(closestWall(walls)?.wall).toBe("open-files");
  });

  it("lists the connections idle past detection, in whole seconds", () => {
    const w = wallOf(hostSample({ keepalive: idle(100, 2, 1) }), "keepalive");
    expect(w.consumers).toEqual([
      {
        name: "10.0.0.5:43210 → 198.18.0.3:5201",
        used: 90000,
        limit: null,
        percent: null,
        unit: "s idle",
        detail: "keepalive off",
      },
      {
        name: "10.0.0.5:43211 → 198.18.0.3:5201",
        used: 8000,
        limit: null,
        percent: null,
        unit: "s idle",
        detail: "keepalive on",
      },
    ]);
    expect(w.note).toBe("1 of them without SO_KEEPALIVE: a dead peer there is never noticed (detection 7875 s)");
  });

  it("is 0 % without established connections, and notes nothing", () => {
    const w = wallOf(hostSample({ keepalive: { ...idle(0, 0), longestIdle: [] } }), "keepalive");
    expect(w).toMatchObject({ used: 0, limit: 0, percent: 0, verdict: "ok" });
    expect(w.note).toBeUndefined();
  });

  it("says why there is no number when ss is missing", () => {
    const w = wallOf(hostSample({ keepalive: null }), "keepalive");
    expect(w).toMatchObject({ used: null, percent: null, verdict: "ok", hint: true });
    expect(w.note).toMatch(/ss is not installed/);
  });
});

describe("closestWall and worstVerdict", () => {
  const wall = (w: WallId, verdict: Verdict, percent: number | null, hint = false): Wall => ({
    wall: w,
    used: percent,
    limit: 100,
    percent,
    verdict,
    consumers: [],
    ...(hint ? { hint: true as const } : {}),
  });

  it.each<[string, Wall[], WallId | null, Verdict]>([
    [
      "the higher percentage among ok walls",
      [wall("open-files", "ok", 10), wall("file-table", "ok", 30), wall("time-wait", "ok", 20)],
      "file-table",
      "ok",
    ],
    [
      "a critical wall at 0 % (drops) before a warning at 89 %",
      [wall("open-files", "warn", 89), wall("listen-queues", "critical", 0)],
      "listen-queues",
      "critical",
    ],
    [
      "a critical wall without a percentage before an ok one",
      [wall("file-table", "ok", 60), wall("listen-queues", "critical", null)],
      "listen-queues",
      "critical",
    ],
    [
      "a warning before ok walls with more",
      [wall("file-table", "ok", 69), wall("conntrack", "warn", 1)],
      "conntrack",
      "warn",
    ],
    [
      "the fuller of two critical walls",
      [wall("open-files", "critical", 95), wall("ephemeral-ports", "critical", 99.5)],
      "ephemeral-ports",
      "critical",
    ],
    ["the first of two equal walls", [wall("time-wait", "warn", 80), wall("orphans", "warn", 80)], "time-wait", "warn"],
    ["never a hint, however full", [wall("keepalive", "warn", 100, true), wall("orphans", "ok", 1)], "orphans", "warn"],
    ["only a hint: none", [wall("keepalive", "warn", 100, true)], null, "warn"],
    ["an ok wall without a percentage is no candidate", [wall("conntrack", "ok", null)], null, "ok"],
    ["an ok wall at 0 % is", [wall("conntrack", "ok", 0)], "conntrack", "ok"],
    ["no walls", [], null, "ok"],
  ])("%s", (_what, walls, closest, worst) => {
    expect(closestWall(walls)?.wall ?? null).toBe(closest);
    expect(worstVerdict(walls)).toBe(worst);
  });

  it("does not depend on the order of the walls", () => {
    const walls = [wall("open-files", "warn", 89), wall("listen-queues", "critical", 0), wall("file-table", "ok", 99)];
    for (let i = 0; i < walls.length; i++) {
      const rotated = [...walls.slice(i), ...walls.slice(0, i)];
      expect(closestWall(rotated)?.wall).toBe("listen-queues");
      expect(closestWall([...rotated].reverse())?.wall).toBe("listen-queues");
    }
  });
});

describe("thresholdsFrom", () => {
  const only = (t: Thresholds, f: (w: WallId) => [number, number]) => {
    for (const w of WALL_IDS) expect([w, t[w].warn, t[w].critical]).toEqual([w, ...f(w)]);
  };

  it("defaults to warn 70 and critical 90 for every wall", () => {
    expect(DEFAULT_THRESHOLD).toEqual({ warn: 70, critical: 90 });
    only(thresholdsFrom([], []), () => [70, 90]);
  });

  it.each<[string, string[], string[], (w: WallId) => [number, number]]>([
    ["one global warn", ["60"], [], () => [60, 90]],
    ["one global critical", [], ["95"], () => [70, 95]],
    ["decimals", ["60.5"], ["99.9"], () => [60.5, 99.9]],
    ["100 is allowed", [], ["100"], () => [70, 100]],
    ["surrounding spaces", [" 60 "], [], () => [60, 90]],
    ["one wall's warn", ["ephemeral-ports=50"], [], (w) => [w === "ephemeral-ports" ? 50 : 70, 90]],
    ["one wall's critical", [], ["conntrack=80"], (w) => [70, w === "conntrack" ? 80 : 90]],
    [
      "a wall's own value after the global one",
      ["60", "ephemeral-ports=50"],
      [],
      (w) => [w === "ephemeral-ports" ? 50 : 60, 90],
    ],
    [
      "a wall's own value before the global one still wins",
      ["ephemeral-ports=50", "60"],
      [],
      (w) => [w === "ephemeral-ports" ? 50 : 60, 90],
    ],
    ["the later global value wins", ["60", "65"], [], () => [65, 90]],
    [
      "the later value for one wall wins",
      ["open-files=40", "open-files=45"],
      [],
      (w) => [w === "open-files" ? 45 : 70, 90],
    ],
    [
      "several walls",
      ["open-files=40", "time-wait=50"],
      ["time-wait=60"],
      (w) => (w === "open-files" ? [40, 90] : w === "time-wait" ? [50, 60] : [70, 90]),
    ],
    ["warn equal to critical", ["80"], ["80"], () => [80, 80]],
  ])("%s", (_what, warn, critical, expected) => {
    only(thresholdsFrom(warn, critical), expected);
  });

  it.each<[string, string[], string[], RegExp[]]>([
    ["0", ["0"], [], [/^--warn "0": expected a percentage above 0 and at most 100, or WALL=PERCENT$/m]],
    ["above 100", [], ["100.5"], [/^--critical "100\.5": expected a percentage/m]],
    ["negative", ["-5"], [], [/^--warn "-5": expected/m]],
    ["a percent sign", ["50%"], [], [/^--warn "50%": expected/m]],
    ["a word", ["high"], [], [/^--warn "high": expected/m]],
    ["empty", [""], [], [/^--warn "": expected/m]],
    ["a wall without a value", ["open-files="], [], [/^--warn "open-files=": expected/m]],
    ["a wall's value out of range", ["open-files=0"], [], [/^--warn "open-files=0": expected/m]],
    [
      "a misspelt wall",
      ["ephemeral-port=50"],
      [],
      [/^--warn "ephemeral-port=50": no wall is named ephemeral-port; did you mean ephemeral-ports\?$/m],
    ],
    [
      "a swapped-letter wall",
      [],
      ["conntrcak=80"],
      [/^--critical "conntrcak=80": no wall is named conntrcak; did you mean conntrack\?$/m],
    ],
    [
      "a wall nothing like any",
      ["zzz=50"],
      [],
      [
        /^--warn "zzz=50": no wall is named zzz; walls: open-files, file-table, ephemeral-ports, time-wait, orphans, listen-queues, conntrack, keepalive$/m,
      ],
    ],
    [
      "a global warn above the default critical, for every wall",
      ["95"],
      [],
      WALL_IDS.map((w) => new RegExp(`^${w}: --warn 95 is above --critical 90`, "m")),
    ],
    [
      "one wall's warn above its critical",
      ["time-wait=85"],
      ["time-wait=80"],
      [/^time-wait: --warn 85 is above --critical 80; a warning comes before the critical threshold$/m],
    ],
    ["a global critical below a wall's warn", ["orphans=75"], ["72"], [/^orphans: --warn 75 is above --critical 72/m]],
  ])("refuses %s", (_what, warn, critical, messages) => {
    let error: unknown;
    try {
      thresholdsFrom(warn, critical);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ThresholdError);
    for (const m of messages) expect((error as Error).message).toMatch(m);
    expect((error as Error).message.split("\n")).toHaveLength(messages.length);
  });

  it("reports every problem at once", () => {
    let error: unknown;
    try {
      thresholdsFrom(["0", "ephemeral-port=50", "time-wait=95"], ["abc", "101"]);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ThresholdError);
    const lines = (error as Error).message.split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/^--warn "0": /),
      expect.stringMatching(/^--warn "ephemeral-port=50": .*did you mean ephemeral-ports\?/),
      expect.stringMatching(/^--critical "abc": /),
      expect.stringMatching(/^--critical "101": /),
      expect.stringMatching(/^time-wait: --warn 95 is above --critical 90/),
    ]);
  });
});
