import { describe, expect, it } from "vitest";
import { aggregate, diagnose, portCapacity, stopReason, type Outcome } from "../../src/capacity/diagnose.js";
import { parseClientFacts, parseServerFacts, type ClientFacts } from "../../src/capacity/facts.js";
import {
  parseClientResult,
  parseServerResult,
  type ClientResult,
  type ServerResult,
} from "../../src/capacity/remote.js";
import { capacityJson, renderCapacityText, spreadLine, type CapacityReport } from "../../src/capacity/report.js";
import { checkReady, helperConfigs } from "../../src/capacity/run.js";
import { spread } from "../../src/capacity/spread.js";
import {
  CLIENT_28K,
  CLIENT_EMFILE,
  CLIENT_REFUSED,
  CLIENT_TWO_SOURCES,
  clientOutput,
  ETH0_ONE,
  ETH0_TWO,
  SERVER_28K,
  SERVER_OUTPUT,
  SERVER_TWO_SOURCES,
} from "./capacityFixtures.js";

const DEFAULT_CLIENT = parseClientFacts(clientOutput("32768 60999", "", ETH0_ONE), "n0nce", "h1", "198.18.1.3");
const WIDE_CLIENT = parseClientFacts(clientOutput("1024 65535", "", ETH0_ONE), "n0nce", "h1", "198.18.1.3");
const TWO_SOURCES_CLIENT = parseClientFacts(clientOutput("1024 65535", "", ETH0_TWO), "n0nce", "h1", "198.18.1.3");
const SERVER = parseServerFacts(SERVER_OUTPUT, "n0nce", "h2");

const client = (out: string) => parseClientResult(out, "", /PROBE-RESULT (\S+)/.exec(out)![1]!, "h1");
const server = (out: string) => parseServerResult(out, "", /PROBE-RESULT (\S+)/.exec(out)![1]!, "h2");
const noServer: ServerResult = { workers: [], netstat: {}, killedWorkers: 0 };

describe("stopReason", () => {
  it.each<[string, Record<string, number>, number, number, string]>([
    ["the bound reached", { bound: 8 }, 120_000, 120_000, "bound"],
    ["every process out of ports", { EADDRNOTAVAIL: 8 }, 28_232, 120_000, "EADDRNOTAVAIL"],
    [
      "some reached their share, the rest ran out of ports",
      { bound: 3, EADDRNOTAVAIL: 5 },
      90_000,
      120_000,
      "EADDRNOTAVAIL",
    ],
    ["the most common reason wins", { ETIMEDOUT: 5, EADDRNOTAVAIL: 3 }, 50_000, 120_000, "ETIMEDOUT"],
    ["a tie goes to the limit that explains more", { time: 4, EMFILE: 4 }, 50_000, 120_000, "EMFILE"],
    ["an unknown errno before the clock", { time: 1, ENOBUFS: 1 }, 50_000, 120_000, "ENOBUFS"],
  ])("%s", (_, stops, held, bound, expected) => {
    expect(stopReason(stops, held, bound)).toBe(expected);
  });
});

describe("aggregate (real helper output)", () => {
  it("sums the processes of both sides", () => {
    const o = aggregate(client(CLIENT_28K), server(SERVER_28K), 120_000, "198.18.1.2");
    expect(o).toMatchObject({
      held: 28_232,
      accepted: 28_232,
      serverPeak: 28_232,
      stop: "EADDRNOTAVAIL",
      stops: { EADDRNOTAVAIL: 8 },
      clientErrors: { EADDRNOTAVAIL: 8 },
      establishedAtHoldStart: 28_232,
      perSource: [{ source: "198.18.1.2", held: 28_232, stop: "EADDRNOTAVAIL" }],
      lostWorkers: { client: 0, server: 0 },
    });
  });

  it("counts per source IP over the processes", () => {
    const o = aggregate(client(CLIENT_TWO_SOURCES), server(SERVER_TWO_SOURCES), 5, "198.18.1.2");
    expect(o.perSource).toEqual([
      { source: "198.18.1.2", held: 3, stop: null },
      { source: "198.18.1.200", held: 2, stop: null },
    ]);
    expect(o.stop).toBe("bound");
  });

  it("names the kernel's source when the helper bound none and held nothing", () => {
    expect(aggregate(client(CLIENT_REFUSED), noServer, 10, "198.18.1.2").perSource).toEqual([
      { source: "198.18.1.2", held: 0, stop: null },
    ]);
  });

  it("counts processes that died without a report or had to be killed", () => {
    const c: ClientResult = { ...client(CLIENT_TWO_SOURCES), killedWorkers: 1 };
    c.workers = [c.workers[0]!, null];
    expect(aggregate(c, noServer, 5, "198.18.1.2").lostWorkers).toEqual({ client: 2, server: 0 });
  });
});

function diagnosisFor(
  out: string,
  facts: ClientFacts,
  bound = 120_000,
  serverOut: ServerResult = noServer,
  overrides: Partial<Outcome> = {},
) {
  const outcome = { ...aggregate(client(out), serverOut, bound, facts.preferredSource), ...overrides };
  const sources = facts.sources.length > 1 ? facts.sources : [facts.preferredSource];
  return diagnose({
    outcome,
    client: facts,
    server: SERVER,
    clientSpread: spread(bound, facts.hardNofile),
    serverSpread: spread(bound, SERVER.hardNofile),
    sources,
    destination: "198.18.1.3:5201",
    bound,
  });
}

describe("diagnose: which setting explains the wall", () => {
  it("the default port range: 1 source × 28,232 ports, fixed by ephemeral-ports and secondary-source-ips", () => {
    const d = diagnosisFor(CLIENT_28K, DEFAULT_CLIENT, 120_000, server(SERVER_28K));
    expect(d.wall).toBe("ports for one destination ip:port exhausted (EADDRNOTAVAIL)");
    expect(d.why).toEqual([
      "1 source IP × 28,232 ports (ip_local_port_range 32768–60999 = 28,232) = 28,232 connections to 198.18.1.3:5201; reached 28,232",
    ]);
    expect(d.fix.join("\n")).toMatch(/role ephemeral-ports.*\n.*role secondary-source-ips/);
    expect(d.portCapacity).toBe(28_232);
  });

  it("the widest range: only more source IPs help", () => {
    const d = diagnosisFor(CLIENT_28K, WIDE_CLIENT, 120_000, server(SERVER_28K), { held: 64_500 });
    expect(d.why[0]).toBe(
      "1 source IP × 64,512 ports (ip_local_port_range 1024–65535 = 64,512) = 64,512 connections to 198.18.1.3:5201; reached 64,500 (12 taken by other sockets or still closing)",
    );
    expect(d.fix).toHaveLength(1);
    expect(d.fix[0]).toMatch(/secondary-source-ips/);
  });

  it("reserved ports come off the capacity", () => {
    const reserved = parseClientFacts(
      clientOutput("1024 65535", "8080,9000-9010", ETH0_ONE),
      "n0nce",
      "h1",
      "198.18.1.3",
    );
    expect(portCapacity(reserved, 2)).toBe(2 * (64_512 - 12));
    expect(diagnosisFor(CLIENT_28K, reserved).why[0]).toContain("minus 12 in ip_local_reserved_ports");
  });

  it("the bound reached with two source IPs: says how far the ports would go", () => {
    const d = diagnosisFor(CLIENT_TWO_SOURCES, TWO_SOURCES_CLIENT, 5, server(SERVER_TWO_SOURCES));
    expect(d.wall).toBe("none hit: the probe's bound (--max 5) was reached");
    expect(d.why[0]).toContain("2 source IPs × 64,512 ports");
    expect(d.fix).toEqual([
      "raise --max to look further: up to 129,024 (the port ranges allow 129,024; 8 processes × hard nofile 20,000 = 160,000)",
    ]);
  });

  it("the bound reached where the fd limits end the look further first", () => {
    const three = parseClientFacts(
      clientOutput(
        "1024 65535",
        "",
        ETH0_TWO.replace("]}", `,{"family":"inet","local":"198.18.1.201","prefixlen":24,"scope":"global"}]}`),
      ),
      "n0nce",
      "h1",
      "198.18.1.3",
    );
    expect(three.sources).toHaveLength(3);
    expect(diagnosisFor(CLIENT_TWO_SOURCES, three, 120_000, noServer, { held: 120_000 }).fix).toEqual([
      "raise --max to look further: up to 160,000 (the port ranges allow 193,536; 8 processes × hard nofile 20,000 = 160,000)",
    ]);
  });

  it.each<[string, string, Partial<Outcome>, RegExp, RegExp]>([
    ["EMFILE: the fd limit per process", CLIENT_EMFILE, {}, /open files per process \(EMFILE\)/, /role fd-limits/],
    ["ENFILE: the system's file table", CLIENT_EMFILE, { stop: "ENFILE" }, /whole system \(ENFILE\)/, /fs.file-max/],
    [
      "ETIMEDOUT: the server's queues",
      CLIENT_28K,
      { stop: "ETIMEDOUT", netstat: { ListenOverflows: 1200, ListenDrops: 1200 } },
      /handshakes not completing/,
      /role syn-backlog/,
    ],
    [
      "ETIMEDOUT behind a server out of fds",
      CLIENT_28K,
      { stop: "ETIMEDOUT", serverErrors: { EMFILE: 40 } },
      /server's open files per process/,
      /server's hard nofile/,
    ],
    ["ECONNREFUSED: nothing listening", CLIENT_REFUSED, {}, /connections refused/, /syn-backlog/],
    ["the time limit", CLIENT_28K, { stop: "time" }, /time limit/, /lower --max/],
    [
      "an unexpected errno",
      CLIENT_28K,
      { stop: "ENOBUFS", clientErrors: { ENOBUFS: 100 } },
      /unexpected error.*ENOBUFS/,
      /^$/,
    ],
  ])("%s", (_, out, overrides, wall, fix) => {
    const d = diagnosisFor(out, DEFAULT_CLIENT, 120_000, noServer, overrides);
    expect(d.wall).toMatch(wall);
    expect(d.fix.join("\n")).toMatch(fix);
  });

  it("ETIMEDOUT shows the listen-queue counters that moved", () => {
    const d = diagnosisFor(CLIENT_28K, DEFAULT_CLIENT, 120_000, noServer, {
      stop: "ETIMEDOUT",
      netstat: { ListenOverflows: 1200, ListenDrops: 0 },
    });
    expect(d.why[0]).toBe(
      "server: somaxconn 4,096 caps each listen() backlog (8 listeners on one port), tcp_max_syn_backlog 2,048, tcp_syncookies 1; listen-queue counters during the probe: ListenOverflows 1,200",
    );
  });
});

function report(): CapacityReport {
  const outcome = aggregate(client(CLIENT_28K), server(SERVER_28K), 120_000, "198.18.1.2");
  const plan = helperConfigs({ bound: 120_000, port: 5201, holdSeconds: 1 }, "198.18.1.3", DEFAULT_CLIENT, SERVER);
  return {
    client: { host: "h1", facts: DEFAULT_CLIENT, spread: plan.clientSpread, sources: plan.usedSources },
    server: { host: "h2", address: "198.18.1.3", port: 5201, facts: SERVER, spread: plan.serverSpread },
    bound: 120_000,
    outcome,
    diagnosis: diagnose({
      outcome,
      client: DEFAULT_CLIENT,
      server: SERVER,
      clientSpread: plan.clientSpread,
      serverSpread: plan.serverSpread,
      sources: plan.usedSources,
      destination: "198.18.1.3:5201",
      bound: 120_000,
    }),
    cleanup: { client: { found: 0, left: 0, sockets: 0 }, server: { found: 0, left: 0, sockets: 0 }, ok: true },
    marker: "provision-probe-5f0c2a9d41e7",
    elapsedSeconds: 5.4,
  };
}

describe("renderCapacityText", () => {
  it("says what was held, the wall, why, the fix, the settings, the spreading and the cleanup", () => {
    expect(renderCapacityText(report())).toBe(
      [
        "Capacity probe: h1 → h2 198.18.1.3:5201, up to 120,000 concurrent connections",
        "  held 28,232 concurrent connections (opened in 1.5 s; ESTABLISHED in the kernel's table: 28,232 at the start of the 1 s hold, 28,232 at its end; the server accepted 28,232)",
        "  per source IP: 198.18.1.2 28,232 (EADDRNOTAVAIL)",
        "stopped by: ports for one destination ip:port exhausted (EADDRNOTAVAIL)",
        "  why: 1 source IP × 28,232 ports (ip_local_port_range 32768–60999 = 28,232) = 28,232 connections to 198.18.1.3:5201; reached 28,232",
        "  fix: widen net.ipv4.ip_local_port_range: role ephemeral-ports (1024–65535 = 64,512 ports per source IP)",
        "       add source IPs and bind(src_ip, 0) with IP_BIND_ADDRESS_NO_PORT in the app: role secondary-source-ips (each address adds one port range)",
        "settings",
        "  h1 (client): ip_local_port_range 32768 60999 (28,232 ports); ip_local_reserved_ports (none); source IPs on eth0: 1 (198.18.1.2); nofile soft 20000 / hard 20000; fs.nr_open 1,048,576; fs.file-max 2,466,193",
        "  h2 (server): somaxconn 4,096 (= the backlog of each of its 8 listeners); tcp_max_syn_backlog 2,048; tcp_syncookies 1; tcp_abort_on_overflow 0; nofile soft 20000 / hard 20000",
        "  spread over 8 client processes of ≤ 15,000 sockets each because the hard nofile limit here is 20,000 (h1); 8 server processes accepting on one port with SO_REUSEPORT (h2: hard nofile 20,000)",
        "cleanup: no helper process (pgrep -f provision-probe-5f0c2a9d41e7) and no socket on port 5201 left on h1 or h2",
        "took 5.4 s",
        "",
      ].join("\n"),
    );
  });

  it("reports a failed cleanup and lost processes", () => {
    const r = report();
    r.cleanup = { client: { found: 2, left: 1, sockets: 3 }, server: { found: 0, left: 0, sockets: null }, ok: false };
    r.outcome.lostWorkers = { client: 1, server: 0 };
    const text = renderCapacityText(r);
    expect(text).toContain("warning: 1 client and 0 server helper processes died or had to be killed");
    expect(text).toContain(
      "cleanup FAILED: h1: 2 helper processes still running (killed), 1 process left, 3 sockets on port 5201; h2: 0 helper processes still running, 0 processes left, sockets unknown (no ss) on port 5201",
    );
  });

  it("--json carries the same report as data", () => {
    const json = JSON.parse(capacityJson(report())) as Record<string, unknown> & { outcome: Outcome };
    expect(json.command).toBe("probe");
    expect(json.outcome.held).toBe(28_232);
    expect(json).toHaveProperty("client.spread.processes", 8);
    expect(json).toHaveProperty("diagnosis.portCapacity", 28_232);
  });
});

describe("spreadLine", () => {
  it.each<[number, number, string]>([
    [
      120_000,
      20_000,
      "spread over 8 client processes of ≤ 15,000 sockets each because the hard nofile limit here is 20,000 (h1); 8 server processes accepting on one port with SO_REUSEPORT (h2: hard nofile 20,000)",
    ],
    [
      10_000,
      20_000,
      "1 client process (h1's hard nofile 20,000 holds the bound); 1 server process accepting on one port with SO_REUSEPORT (h2: hard nofile 20,000)",
    ],
    [
      120_000,
      4096,
      "spread over 8 client processes of ≤ 15,000 sockets each because the hard nofile limit here is 4,096 (h1); the bound needs more than 8 processes of 3,072, so the processes will meet their fd limit first; 8 server processes accepting on one port with SO_REUSEPORT (h2: hard nofile 4,096)",
    ],
  ])("bound %i, hard %i", (bound, hard, expected) => {
    expect(spreadLine("h1", spread(bound, hard), "h2", spread(bound, hard))).toBe(expected);
  });
});

describe("helperConfigs and checkReady", () => {
  it("binds source IPs only when there are several, and keeps the time bounds", () => {
    const one = helperConfigs({ bound: 120_000, port: 5201, holdSeconds: 20 }, "198.18.1.3", DEFAULT_CLIENT, SERVER);
    expect(one.clientConfig).toMatchObject({ sources: [], processes: 8, inFlight: 64, hardSeconds: 90 });
    expect(one.serverConfig).toMatchObject({ processes: 8, backlog: 65535, hardSeconds: 100 });
    expect(one.usedSources).toEqual(["198.18.1.2"]);
    const two = helperConfigs({ bound: 120_000, port: 5201, holdSeconds: 0 }, "198.18.1.3", TWO_SOURCES_CLIENT, SERVER);
    expect(two.clientConfig.sources).toEqual(["198.18.1.2", "198.18.1.200"]);
    expect(two.clientConfig.hardSeconds).toBe(70);
  });

  it.each<[string, ClientFacts, typeof SERVER, RegExp]>([
    ["python3 missing on the client", { ...DEFAULT_CLIENT, python: false }, SERVER, /h1: python3 is not installed/],
    ["python3 missing on the server", DEFAULT_CLIENT, { ...SERVER, python: false }, /h2: python3 is not installed/],
    [
      "the port taken on the server",
      DEFAULT_CLIENT,
      { ...SERVER, portListeners: 1 },
      /h2: port 5201 already has a listener; pick a free port with --port/,
    ],
  ])("refuses %s", (_, c, s, message) => {
    expect(() => checkReady("h1", "h2", c, s, 5201)).toThrow(message);
  });
});
