import { afterEach, describe, expect, it, vi } from "vitest";
import { plainStyle, ttyStyle } from "../../src/output/format.js";
import { statusMetrics, escapeLabel } from "../../src/status/prometheus.js";
import { EXIT_CRITICAL, judged, statusExitCode, type HostStatus } from "../../src/status/read.js";
import { DETAILED_HOSTS, renderStatus, statusJson, summaryLine, usage, wallGroups } from "../../src/status/render.js";
import type { HostSample } from "../../src/status/sample.js";
import { thresholdsFrom } from "../../src/status/thresholds.js";
import { VERDICT_RANK, WALL_IDS, WALL_INFO, type Thresholds, type Verdict } from "../../src/status/walls.js";
import { watchStatus } from "../../src/status/watch.js";
import { hostSample } from "./_status.js";

const T: Thresholds = thresholdsFrom([], []);

// ---------------------------------------------------------------------------------------------
// Hosts in known states, judged by the real judge
// ---------------------------------------------------------------------------------------------

/** Near the port wall: `sockets` of 28,232 usable ports to one destination. */
const portsBusy = (sockets: number, over: Partial<HostSample> = {}) =>
  hostSample({ destinations: [{ endpoint: "198.18.0.3:5201", sockets, timeWait: 40, sources: 1 }], ...over });
/** A process at `fds` of 1,024. */
const fdsBusy = (fds: number) =>
  hostSample({
    processes: { read: 1, fds, unreadable: 0, worst: [{ pid: 7, name: "java", fds, soft: 1024, hard: 1024 }] },
  });
const dropping = (n: number) =>
  hostSample({ netstat: { ListenOverflows: n, ListenDrops: n, TCPBacklogDrop: 0, TCPReqQFullDrop: null } });

const ok = (host: string, sample = hostSample()) => judged(host, sample, T);
const failed = (host: string, kind: string, message: string): HostStatus => ({
  host,
  verdict: "error",
  walls: [],
  closest: null,
  windowSeconds: null,
  error: { kind, message },
});

/** Lines of a per-host table's header: `host  closest wall: …` or `host  no wall in sight`. */
const HOST_HEADER = /^(\S+) {2}(?:closest wall: (\S+) (?:[\d.]+% )?\((ok|warn|critical)\)|no wall in sight)$/;
/** A wall's line in a per-host table. */
const WALL_LINE = /^ {2}([a-z-]+) +(ok|warn|critical) +(\S.*)$/;
/** A row of the fleet view: verdict, wall, hosts, numbers, story. */
const FLEET_ROW = /^(ok|warn|critical) +([a-z-]+) {2,}(.+?) {2,}/;

function hostTables(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of text.split("\n")) {
    const head = HOST_HEADER.exec(line);
    if (head) out.set(head[1]!, (current = []));
    else if (current && line.startsWith("  ")) current.push(line);
    else current = null;
  }
  return out;
}

describe("summaryLine", () => {
  it.each<[string, HostStatus[], string]>([
    ["one host", [ok("web1")], "status of 1 host, counters sampled over 1.0 s: 0 critical, 0 warn, 1 ok"],
    [
      "every verdict and errors",
      [judged("a", portsBusy(27000), T), judged("b", portsBusy(21000), T), ok("c"), failed("d", "unreachable", "x")],
      "status of 4 hosts, counters sampled over 1.0 s: 1 critical, 1 warn, 1 ok, 1 not read",
    ],
    [
      "the shortest window",
      [ok("a", hostSample({ windowSeconds: 1.04 })), ok("b", hostSample({ windowSeconds: 0.96 }))],
      "status of 2 hosts, counters sampled over 1.0 s: 0 critical, 0 warn, 2 ok",
    ],
    [
      "a short window, rounded to a tenth",
      [ok("a", hostSample({ windowSeconds: 0.23 })), ok("b", hostSample({ windowSeconds: 5 }))],
      "status of 2 hosts, counters sampled over 0.2 s: 0 critical, 0 warn, 2 ok",
    ],
    [
      "no host read: no window",
      [failed("a", "auth", "denied"), failed("b", "auth", "denied")],
      "status of 2 hosts: 0 critical, 0 warn, 0 ok, 2 not read",
    ],
    [
      "thousands",
      Array.from({ length: 1200 }, (_, i) => failed(`h${i}`, "timeout", "x")),
      "status of 1,200 hosts: 0 critical, 0 warn, 0 ok, 1,200 not read",
    ],
  ])("%s", (_what, statuses, line) => {
    expect(summaryLine(statuses)).toBe(line);
    expect(renderStatus(statuses).split("\n")[0]).toBe(line);
  });
});

describe("usage", () => {
  it.each<[number | null, number | null, number | null, string]>([
    [901, 1000, 90.1, "901/1,000 (90.1%)"],
    [28232, 28232, 100, "28,232/28,232 (100%)"],
    [901, null, null, "901/?"],
    [0, 0, null, "0/0"],
    [null, 1000, null, "—"],
  ])("%s of %s (%s %) reads %s", (used, limit, percent, text) => {
    expect(usage({ used, limit, percent })).toBe(text);
  });
});

describe("renderStatus: up to three hosts, a table each", () => {
  it.each([1, 2, 3])("%d read hosts (and one not read) get a table each, every wall once", (n) => {
    const statuses = [
      ...Array.from({ length: n }, (_, i) => judged(`web${i + 1}`, i === 0 ? portsBusy(27000) : hostSample(), T)),
      failed("db1", "unreachable", "connect ECONNREFUSED 198.18.0.9:22"),
    ];
    const text = renderStatus(statuses);
    expect(n).toBeLessThanOrEqual(DETAILED_HOSTS);
    const tables = hostTables(text);
    expect([...tables.keys()]).toEqual(statuses.slice(0, n).map((s) => s.host));
    for (const lines of tables.values()) {
      const walls = lines.flatMap((l) => WALL_LINE.exec(l)?.[1] ?? []);
      expect([...walls].sort()).toEqual([...WALL_IDS].sort());
    }
    // No fleet view.
    expect(text.split("\n").some((l) => FLEET_ROW.test(l))).toBe(false);
    expect(text.endsWith("db1: unreachable: connect ECONNREFUSED 198.18.0.9:22\n")).toBe(true);
  });

  it("heads the table with the closest wall and orders walls by concern, hints last", () => {
    const s = judged("web1", portsBusy(27000, { netstat: dropping(3).netstat, processes: fdsBusy(800).processes }), T);
    const text = renderStatus([s]);
    const header = text.split("\n").find((l) => HOST_HEADER.test(l));
    expect(header).toBe("web1  closest wall: ephemeral-ports 95.6% (critical)");
    const order = hostTables(text)
      .get("web1")!
      .flatMap((l) => {
        const m = WALL_LINE.exec(l);
        return m ? [[m[1]!, m[2]!] as const] : [];
      });
    // Critical first (the fuller one before), then warn, then ok by percentage; keepalive last.
    expect(order.slice(0, 3)).toEqual([
      ["ephemeral-ports", "critical"],
      ["listen-queues", "critical"],
      ["open-files", "warn"],
    ]);
    expect(order.at(-1)).toEqual(["keepalive", "ok"]);
    const ranks = order.map(([, v]) => VERDICT_RANK[v as Verdict]);
    expect(ranks).toEqual([...ranks].sort((a, b) => b - a));
    const percents = order.slice(3, -1).map(([w]) => s.walls.find((x) => x.wall === w)!.percent ?? -1);
    expect(percents).toEqual([...percents].sort((a, b) => b - a));
  });

  it("aligns the verdict and the numbers of every wall in a column", () => {
    const lines = hostTables(renderStatus([judged("web1", portsBusy(27000), T)]))
      .get("web1")!
      .filter((l) => WALL_LINE.test(l));
    const verdictAt = lines.map((l) => l.search(/ (ok|warn|critical) /));
    const usageAt = lines.map((l) => l.search(/ \d[\d,]*\/| — /));
    expect(new Set(verdictAt).size).toBe(1);
    expect(new Set(usageAt).size).toBe(1);
  });

  it("gives a raised wall its reason, its consumers below and the role that moves it", () => {
    const lines = renderStatus([judged("web1", dropping(4), T)]).split("\n");
    const i = lines.findIndex((l) => /^ {2}listen-queues +critical /.test(l));
    expect(lines[i]).toMatch(/ ListenOverflows \+4, ListenDrops \+4 in 1\.0 s: connections are being dropped now$/);
    expect(lines[i + 1]!.trim()).toMatch(/^0\.0\.0\.0:80 0\/512 \(0%\), accept queue; backlog 511/);
    expect(lines[i + 2]!.trim()).toBe(
      `${WALL_INFO["listen-queues"].what}; moved by role syn-backlog (provision explain syn-backlog)`,
    );
  });

  it("names the role only for walls that are not ok", () => {
    const text = renderStatus([judged("web1", portsBusy(27000), T)]);
    expect(text).toContain("moved by role ephemeral-ports (provision explain ephemeral-ports)");
    for (const wall of ["fd-limits", "tw-reuse", "syn-backlog", "conntrack", "keepalive"])
      expect(text).not.toContain(`(provision explain ${wall})`);
  });

  it("shows up to three consumers of a wall, the first on the wall's line", () => {
    const destinations = [1, 2, 3, 4, 5].map((i) => ({
      endpoint: `10.0.0.${i}:80`,
      sockets: 10000 - i,
      timeWait: 0,
      sources: 1,
    }));
    const text = renderStatus([judged("web1", hostSample({ destinations }), T)]);
    const lines = text.split("\n");
    const i = lines.findIndex((l) => /^ {2}ephemeral-ports /.test(l));
    expect(lines[i]).toContain("10.0.0.1:80 9,999/28,232 (35.4%), 0 in TIME_WAIT");
    expect(lines[i + 1]!.trim()).toBe("10.0.0.2:80 9,998/28,232 (35.4%), 0 in TIME_WAIT");
    expect(lines[i + 2]!.trim()).toBe("10.0.0.3:80 9,997/28,232 (35.4%), 0 in TIME_WAIT");
    expect(text).not.toContain("10.0.0.4:80");
  });

  it("says the note of a wall that has no number", () => {
    const sample = hostSample({ keepalive: null, conntrack: null });
    delete sample.sysctl["net/netfilter/nf_conntrack_count"];
    const lines = renderStatus([ok("web1", sample)]).split("\n");
    expect(lines.find((l) => /^ {2}conntrack /.test(l))).toMatch(
      / — +nf_conntrack is not loaded: there is no table to fill$/,
    );
    expect(
      lines.some((l) => l.trim() === "note: ss is not installed (package iproute2): idle connections not counted"),
    ).toBe(true);
  });

  it("says no wall is in sight when nothing could be measured", () => {
    const sample = hostSample({
      processes: { read: 0, fds: 0, unreadable: 0, worst: [] },
      portRange: null,
      destinations: [],
      timeWait: null,
      orphans: null,
      listeners: [],
      keepalive: null,
      conntrack: null,
      sysctl: {},
    });
    const text = renderStatus([ok("web1", sample)]);
    expect(text.split("\n")[2]).toBe("web1  no wall in sight");
  });

  it("paints critical red and warn bold on a terminal, and nothing in plain text", () => {
    const statuses = [judged("web1", portsBusy(27000), T), judged("web2", fdsBusy(800), T)];
    const tty = renderStatus(statuses, ttyStyle);
    expect(tty).toContain(ttyStyle.red("critical".padEnd(8)));
    expect(tty).toContain(ttyStyle.bold("warn".padEnd(8)));
    expect(tty).toContain(ttyStyle.red("closest wall: ephemeral-ports 95.6% (critical)"));
    expect(renderStatus(statuses, plainStyle)).not.toMatch(/\x1b\[/);
    // Without the escapes, the terminal's text is the plain one.
    expect(tty.replace(/\x1b\[[0-9;]*m/g, "")).toBe(renderStatus(statuses, plainStyle));
  });
});

describe("renderStatus: the fleet view", () => {
  /** h1-h40 near the port wall (h40 the fullest), h41-h50 with a busy process, h51-h53 unreachable. */
  function fleet(): HostStatus[] {
    const out: HostStatus[] = [];
    for (let i = 1; i <= 40; i++) out.push(judged(`h${i}`, portsBusy(26000 + 25 * i), T));
    for (let i = 41; i <= 50; i++) out.push(judged(`h${i}`, fdsBusy(500 + i), T));
    for (let i = 51; i <= 53; i++) out.push(failed(`h${i}`, "unreachable", `connect ECONNREFUSED 198.18.0.${i}:22`));
    return out;
  }

  it("starts with the summary", () => {
    expect(renderStatus(fleet()).split("\n")[0]).toBe(
      "status of 53 hosts, counters sampled over 1.0 s: 40 critical, 0 warn, 10 ok, 3 not read",
    );
  });

  it("has no per-host table above three hosts read", () => {
    const statuses = [ok("a"), ok("b"), ok("c"), ok("d")];
    expect(hostTables(renderStatus(statuses)).size).toBe(0);
    expect(hostTables(renderStatus(statuses.slice(0, 3))).size).toBe(3);
  });

  it("prints one line per wall and verdict, worst first, with the hosts folded", () => {
    const text = renderStatus(fleet());
    const rows = text.split("\n").flatMap((l) => {
      const m = FLEET_ROW.exec(l);
      return m ? [{ line: l, verdict: m[1] as Verdict, wall: m[2]!, hosts: m[3]!.trim() }] : [];
    });
    const keys = rows.map((r) => `${r.wall}/${r.verdict}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual(expect.arrayContaining(["ephemeral-ports/critical", "ephemeral-ports/ok", "open-files/ok"]));
    const ranks = rows.map((r) => VERDICT_RANK[r.verdict]);
    expect(ranks).toEqual([...ranks].sort((a, b) => b - a));
    expect(rows[0]).toMatchObject({ verdict: "critical", wall: "ephemeral-ports", hosts: "h[1:40] (40 hosts)" });
    expect(rows[0]!.line).toContain("role ephemeral-ports");
    expect(rows.find((r) => r.wall === "ephemeral-ports" && r.verdict === "ok")!.hosts).toBe("h[41:50] (10 hosts)");
    // A wall every host read shares says so rather than listing them.
    expect(rows.find((r) => r.wall === "file-table")!.hosts).toBe("all 50 hosts");
    // ok rows name no role.
    for (const r of rows.filter((x) => x.verdict === "ok")) expect(r.line).not.toMatch(/ role /);
  });

  it("stands for a group with its fullest host", () => {
    const rows = renderStatus(fleet()).split("\n");
    // h40 holds 27,000 of 28,232 ports, more than any other host of the group.
    expect(rows.find((l) => l.startsWith("critical"))).toContain("worst h40: 27,000/28,232 (95.6%)");
    expect(rows.find((l) => /^ok +open-files /.test(l))).toContain("highest h50: 550/1,024 (53.7%)");
  });

  it("stands for a group with its fullest host even where percentages round alike", () => {
    // 27,033 and 27,040 of 28,232 both round to 95.8 %; h40 is the fuller.
    const statuses = [...Array.from({ length: 40 }, (_, i) => judged(`h${i + 1}`, portsBusy(27001 + i), T)), ok("x")];
    const critical = wallGroups(statuses).find((g) => g.verdict === "critical")!;
    expect(critical.worst.host).toBe("h40");
  });

  it("ends the view with each host's closest wall, the most common first", () => {
    const lines = renderStatus(fleet()).split("\n");
    expect(lines).toContain("closest wall: ephemeral-ports on h[1:40] (40 hosts), open-files on h[41:50] (10 hosts)");
  });

  it("groups the hosts that failed alike on one line, after the view", () => {
    const statuses = [
      ...fleet(),
      failed("db1", "auth", "Permission denied (publickey)"),
      failed("db2", "auth", "Permission denied (publickey)"),
    ];
    const lines = renderStatus(statuses).trimEnd().split("\n");
    expect(lines.slice(-2)).toEqual([
      "h[51:53] (3 hosts): unreachable: connect ECONNREFUSED 198.18.0.[51:53]:22",
      "db1, db2 (2 hosts): auth: Permission denied (publickey)",
    ]);
  });

  it("shows only the errors, without a view, when no host was read", () => {
    const text = renderStatus([
      failed("a1", "timeout", "timed out after 30 s"),
      failed("a2", "timeout", "timed out after 30 s"),
    ]);
    expect(text).toBe(
      "status of 2 hosts: 0 critical, 0 warn, 0 ok, 2 not read\n\na1, a2 (2 hosts): timeout: timed out after 30 s\n",
    );
  });

  it("cuts a long list of hosts to one line", () => {
    const statuses = Array.from({ length: 30 }, (_, i) =>
      judged(
        `${["web", "db", "cache"][i % 3]}-${["alpha", "beta", "gamma", "delta", "omega"][i % 5]}-${i}.example.net`,
        i % 2 ? portsBusy(27000) : hostSample(),
        T,
      ),
    );
    const row = renderStatus(statuses)
      .split("\n")
      .find((l) => l.startsWith("critical"))!;
    expect(FLEET_ROW.exec(row)![3]).toMatch(/, … \d+ more \(15 hosts\)$/);
  });
});

describe("statusJson", () => {
  it("carries the thresholds, the counts and every host's walls with every consumer kept", () => {
    const thresholds = thresholdsFrom(["ephemeral-ports=50"], []);
    const destinations = [1, 2, 3, 4, 5, 6].map((i) => ({
      endpoint: `10.0.0.${i}:80`,
      sockets: 100 * i,
      timeWait: 0,
      sources: 1,
    }));
    const statuses = [
      judged("web1", hostSample({ destinations }), thresholds),
      judged("web2", portsBusy(27000), thresholds),
      failed("db1", "unreachable", "connect ECONNREFUSED 198.18.0.9:22"),
    ];
    const json = JSON.parse(statusJson(statuses, thresholds));
    expect(json).toEqual({
      command: "status",
      thresholds: JSON.parse(JSON.stringify(thresholds)),
      summary: { hosts: 3, critical: 1, warn: 0, ok: 1, error: 1 },
      hosts: [
        {
          host: "web1",
          verdict: "ok",
          windowSeconds: 1,
          closest: "open-files",
          walls: JSON.parse(JSON.stringify(statuses[0]!.walls)),
        },
        {
          host: "web2",
          verdict: "critical",
          windowSeconds: 1,
          closest: "ephemeral-ports",
          walls: JSON.parse(JSON.stringify(statuses[1]!.walls)),
        },
        {
          host: "db1",
          verdict: "error",
          error: { kind: "unreachable", message: "connect ECONNREFUSED 198.18.0.9:22" },
          closest: null,
          walls: [],
        },
      ],
    });
    expect(json.thresholds["ephemeral-ports"]).toEqual({ warn: 50, critical: 90 });
    // A host not read has no window, rather than a window of null.
    expect(Object.keys(json.hosts[2]).sort()).toEqual(["closest", "error", "host", "verdict", "walls"]);
    expect(Object.keys(json.hosts[0]).sort()).toEqual(["closest", "host", "verdict", "walls", "windowSeconds"]);
    // Five consumers in the JSON where the text shows three.
    const ports = json.hosts[0].walls.find((w: { wall: string }) => w.wall === "ephemeral-ports");
    expect(ports.consumers).toHaveLength(5);
    expect(ports.consumers[0].name).toBe("10.0.0.6:80");
  });
});

describe("statusExitCode", () => {
  it.each<[string, HostStatus[], number]>([
    ["every host ok", [ok("a"), ok("b")], 0],
    ["a warning", [ok("a"), judged("b", fdsBusy(800), T)], 0],
    ["a critical wall", [ok("a"), judged("b", portsBusy(27000), T)], EXIT_CRITICAL],
    ["a critical wall and a host not read", [judged("b", dropping(1), T), failed("c", "timeout", "x")], EXIT_CRITICAL],
    ["a host not read", [ok("a"), failed("c", "timeout", "x")], 1],
    ["no host read", [failed("c", "timeout", "x")], 1],
    ["no hosts", [], 0],
  ])("%s: %d", (_what, statuses, code) => {
    expect(statusExitCode(statuses)).toBe(code);
  });

  it("uses 3 for critical", () => {
    expect(EXIT_CRITICAL).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition format
// ---------------------------------------------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = String.raw`[a-zA-Z_:][a-zA-Z0-9_:]*`;
const LABEL_NAME = String.raw`[a-zA-Z_][a-zA-Z0-9_]*`;
const LABEL_VALUE = String.raw`(?:[^"\\\n]|\\[\\"n])*`;
const VALUE = String.raw`[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)`;
const HELP_LINE = new RegExp(String.raw`^# HELP (${NAME}) ((?:[^\\\n]|\\[\\n])*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
// `name{labels} value`, and nothing after the value: no timestamp.
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL_NAME}="${LABEL_VALUE}",?)*)\\})? (${VALUE})$`);
const LABEL = new RegExp(`(${LABEL_NAME})="(${LABEL_VALUE})"(?:,|$)`, "y");

/**
 * The text format, strictly (prometheus/docs exposition_formats.md): HELP then TYPE once per
 * family, before its samples, which stay together; label values escaped; no timestamps; no
 * series twice. Returns the samples with label values unescaped.
 */
function parseExposition(text: string): { samples: Sample[]; families: Map<string, { help: string; type: string }> } {
  if (!text.endsWith("\n")) throw new Error("the text does not end with a newline");
  const families = new Map<string, { help: string; type: string }>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  let current: string | null = null;
  let help: string | null = null;
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1} ${JSON.stringify(line)}`;
    let m: RegExpExecArray | null;
    if ((m = HELP_LINE.exec(line))) {
      if (families.has(m[1]!) || m[1] === current) throw new Error(`${where}: ${m[1]} described twice`);
      current = m[1]!;
      help = m[2]!;
    } else if ((m = TYPE_LINE.exec(line))) {
      if (m[1] !== current || help === null) throw new Error(`${where}: TYPE without its HELP just before`);
      families.set(current, { help, type: m[2]! });
      help = null;
    } else if ((m = SAMPLE_LINE.exec(line))) {
      if (m[1] !== current || !families.has(current)) throw new Error(`${where}: a sample outside its family`);
      const labels: Record<string, string> = {};
      const body = m[2] ?? "";
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < body.length) {
        const l = LABEL.exec(body);
        if (!l) throw new Error(`${where}: malformed labels`);
        if (l[1]! in labels) throw new Error(`${where}: label ${l[1]} twice`);
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      }
      const key = JSON.stringify([m[1], Object.entries(labels).sort()]);
      if (series.has(key)) throw new Error(`${where}: the same series twice`);
      series.add(key);
      samples.push({ name: m[1]!, labels, value: Number(m[3]) });
    } else throw new Error(`${where}: not a line of the text format (or a sample with a timestamp)`);
  });
  if (help !== null) throw new Error("a HELP without its TYPE");
  return { samples, families };
}

describe("the exposition-format checker itself", () => {
  const good = '# HELP x_up help\n# TYPE x_up gauge\nx_up{host="a"} 1\n';
  it("accepts a well-formed family", () => {
    expect(parseExposition(good).samples).toEqual([{ name: "x_up", labels: { host: "a" }, value: 1 }]);
  });
  it.each<[string, string]>([
    ["a timestamp", '# HELP x_up help\n# TYPE x_up gauge\nx_up{host="a"} 1 1700000000000\n'],
    ["an unescaped quote", '# HELP x_up help\n# TYPE x_up gauge\nx_up{host="a"b"} 1\n'],
    ["a raw newline in a label value", '# HELP x_up help\n# TYPE x_up gauge\nx_up{host="a\nb"} 1\n'],
    ["a lone backslash", '# HELP x_up help\n# TYPE x_up gauge\nx_up{host="a\\b"} 1\n'],
    ["no TYPE", '# HELP x_up help\nx_up{host="a"} 1\n'],
    ["no HELP", '# TYPE x_up gauge\nx_up{host="a"} 1\n'],
    ["a family twice", `${good}${good}`],
    ["the same series twice", `${good.trimEnd()}\nx_up{host="a"} 2\n`],
    ["no final newline", good.trimEnd()],
    ["a value that is not a number", '# HELP x_up help\n# TYPE x_up gauge\nx_up{host="a"} one\n'],
    ["a dash in a metric name", "# HELP x-up help\n# TYPE x-up gauge\nx-up 1\n"],
  ])("rejects %s", (_what, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});

describe("statusMetrics", () => {
  const NOW = new Date("2024-05-06T07:08:09.999Z");
  const WEIRD = 'we"ird\\host\nname';
  function statuses(): HostStatus[] {
    return [
      judged("web1", portsBusy(27000, { netstat: dropping(3).netstat }), T),
      judged("web2", hostSample({ keepalive: null, conntrack: null, windowSeconds: 0.98 }), T),
      judged(WEIRD, hostSample(), T),
      failed("db1", "unreachable", "connect ECONNREFUSED 198.18.0.9:22"),
    ];
  }

  it("follows the text exposition format: HELP and TYPE gauge per family, escaped labels, no timestamps", () => {
    const { samples, families } = parseExposition(statusMetrics(statuses(), NOW));
    expect(families.size).toBeGreaterThanOrEqual(7);
    for (const [name, f] of families) {
      expect(name).toMatch(/^provision_status_/);
      expect(f.type).toBe("gauge");
      expect(f.help.length).toBeGreaterThan(0);
    }
    expect(samples.filter((s) => s.labels.host === WEIRD).length).toBeGreaterThan(0);
    for (const s of samples) expect(Number.isFinite(s.value)).toBe(true);
  });

  it("escapes backslash, double quote and newline in label values", () => {
    const text = statusMetrics([failed(WEIRD, "timeout", "x")], NOW);
    expect(text).toContain('provision_status_up{host="we\\"ird\\\\host\\nname"} 0\n');
    expect(escapeLabel('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    expect(escapeLabel("\\n")).toBe("\\\\n");
  });

  it("says up 1 for a host read and up 0 for one that was not, with no wall of it", () => {
    const { samples } = parseExposition(statusMetrics(statuses(), NOW));
    const up = Object.fromEntries(
      samples.filter((s) => s.name === "provision_status_up").map((s) => [s.labels.host, s.value]),
    );
    expect(up).toEqual({ web1: 1, web2: 1, [WEIRD]: 1, db1: 0 });
    expect(samples.filter((s) => s.labels.host === "db1").map((s) => s.name)).toEqual(["provision_status_up"]);
  });

  it("gives each wall's used, limit, ratio (used / limit) and verdict", () => {
    const input = statuses();
    const { samples } = parseExposition(statusMetrics(input, NOW));
    const value = (name: string, host: string, wall: string) =>
      samples.find((s) => s.name === `provision_status_${name}` && s.labels.host === host && s.labels.wall === wall)
        ?.value;
    for (const s of input) {
      for (const w of s.walls) {
        expect(value("used", s.host, w.wall)).toBe(w.used ?? undefined);
        expect(value("limit", s.host, w.wall)).toBe(w.limit ?? undefined);
        if (w.percent === null) expect(value("ratio", s.host, w.wall)).toBeUndefined();
        else if (w.used !== null && w.limit)
          // Unrounded (6 significant digits), so a tiny share of a huge limit is not 0.
          expect(value("ratio", s.host, w.wall)).toBe(Number((w.used / w.limit).toPrecision(6)));
        else expect(value("ratio", s.host, w.wall)).toBeCloseTo(w.percent / 100, 12);
        expect(value("verdict", s.host, w.wall)).toBe(VERDICT_RANK[w.verdict]);
      }
    }
    expect(value("ratio", "web1", "ephemeral-ports")).toBe(0.956362);
    expect(value("verdict", "web1", "listen-queues")).toBe(2);
  });

  it("gives each drop counter's increase, leaving out the counters the kernel does not have", () => {
    const { samples } = parseExposition(statusMetrics(statuses(), NOW));
    const inc = samples.filter((s) => s.name === "provision_status_window_increase" && s.labels.host === "web1");
    expect(inc.map((s) => [s.labels.wall, s.labels.counter, s.value])).toEqual([
      ["listen-queues", "ListenOverflows", 3],
      ["listen-queues", "ListenDrops", 3],
      ["listen-queues", "TCPBacklogDrop", 0],
      ["conntrack", "drop", 0],
      ["conntrack", "early_drop", 0],
      ["conntrack", "insert_failed", 0],
    ]);
    // web2 has no /proc/net/stat/nf_conntrack: no conntrack counters.
    expect(
      samples.some((s) => s.labels.host === "web2" && s.labels.wall === "conntrack" && s.name.endsWith("_increase")),
    ).toBe(false);
  });

  it("gives the window per host read and when it ran, in whole seconds, without labels", () => {
    const { samples } = parseExposition(statusMetrics(statuses(), NOW));
    const windows = samples
      .filter((s) => s.name === "provision_status_window_seconds")
      .map((s) => [s.labels.host, s.value]);
    expect(windows).toEqual([
      ["web1", 1],
      ["web2", 0.98],
      [WEIRD, 1],
    ]);
    expect(samples.filter((s) => s.name === "provision_status_last_run_timestamp_seconds")).toEqual([
      { name: "provision_status_last_run_timestamp_seconds", labels: {}, value: Math.floor(NOW.getTime() / 1000) },
    ]);
  });

  it("still writes a valid file when no host was read", () => {
    const { samples } = parseExposition(statusMetrics([failed("a", "timeout", "x")], NOW));
    expect(samples.map((s) => s.name)).toEqual(["provision_status_up", "provision_status_last_run_timestamp_seconds"]);
  });
});

// ---------------------------------------------------------------------------------------------
// --watch
// ---------------------------------------------------------------------------------------------

const CLEAR = "\x1b[H\x1b[2J";
const round = (n: number): HostStatus[] => [ok(`round${n}`)];
const NOW = () => new Date("2024-05-06T12:34:56.789Z");

describe("watchStatus", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("draws each round after clearing the screen, and returns the last round when stopped", async () => {
    const stop = new AbortController();
    const writes: string[] = [];
    let reads = 0;
    const last = await watchStatus({
      read: async () => round(++reads),
      render: (s) => `drawn ${s[0]!.host}\n`,
      everySeconds: 0.001,
      write: (text) => {
        writes.push(text);
        if (writes.length === 3) stop.abort();
      },
      stop: stop.signal,
      now: NOW,
    });
    expect(writes).toEqual(
      [1, 2, 3].map((n) => `${CLEAR}every 0.001 s, last read 12:34:56 UTC; Ctrl-C to stop\n\ndrawn round${n}\n`),
    );
    expect(reads).toBe(3);
    expect(last).toEqual(round(3));
  });

  it("stops at once when stopped while waiting for the next round", async () => {
    const stop = new AbortController();
    let reads = 0;
    const started = Date.now();
    const last = await watchStatus({
      read: async () => round(++reads),
      render: () => "x",
      everySeconds: 3600,
      write: () => setTimeout(() => stop.abort(), 20),
      stop: stop.signal,
      now: NOW,
    });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(reads).toBe(1);
    expect(last).toEqual(round(1));
  });

  it("stops at once when stopped while a read is in flight, returning the round before", async () => {
    const stop = new AbortController();
    let reads = 0;
    const writes: string[] = [];
    const last = await watchStatus({
      read: () => {
        reads++;
        if (reads === 1) return Promise.resolve(round(1));
        setTimeout(() => stop.abort(), 20);
        return new Promise<HostStatus[]>(() => {}); // a host that never answers
      },
      render: (s) => s[0]!.host,
      everySeconds: 0.001,
      write: (t) => writes.push(t),
      stop: stop.signal,
      now: NOW,
    });
    expect(reads).toBe(2);
    expect(writes).toHaveLength(1);
    expect(last).toEqual(round(1));
  });

  it("returns null without reading when stopped before it starts", async () => {
    const stop = new AbortController();
    stop.abort();
    const read = vi.fn(async () => round(1));
    const write = vi.fn();
    expect(await watchStatus({ read, render: () => "x", everySeconds: 1, write, stop: stop.signal })).toBeNull();
    expect(read).not.toHaveBeenCalled();
    expect(write).not.toHaveBeenCalled();
  });

  it("returns null when stopped during the first read", async () => {
    const stop = new AbortController();
    const write = vi.fn();
    const pending = watchStatus({
      read: () => new Promise<HostStatus[]>(() => {}),
      render: () => "x",
      everySeconds: 1,
      write,
      stop: stop.signal,
    });
    stop.abort();
    expect(await pending).toBeNull();
    expect(write).not.toHaveBeenCalled();
  });

  it("starts a round every SECONDS, counting the read's own time in it", async () => {
    vi.useFakeTimers({ now: new Date("2024-05-06T12:00:00Z") });
    const stop = new AbortController();
    const readsAt: number[] = [];
    const pending = watchStatus({
      read: async () => {
        readsAt.push(Date.now());
        await new Promise((r) => setTimeout(r, 300)); // the hosts take 0.3 s to answer
        return round(readsAt.length);
      },
      render: () => "x",
      everySeconds: 2,
      write: () => {},
      stop: stop.signal,
    });
    await vi.advanceTimersByTimeAsync(1999);
    expect(readsAt).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(readsAt).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(2000);
    expect(readsAt).toHaveLength(3);
    expect(readsAt.map((t) => t - readsAt[0]!)).toEqual([0, 2000, 4000]);
    stop.abort();
    expect(await pending).toEqual(round(2));
  });
});
