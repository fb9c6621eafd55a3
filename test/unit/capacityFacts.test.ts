import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  CapacityError,
  clientFactsScript,
  parseClientFacts,
  parseFactRecords,
  parseRoute,
  parseServerFacts,
  portsInRange,
  serverFactsScript,
  sourceAddresses,
} from "../../src/capacity/facts.js";
import {
  clientOutput,
  ETH0_ONE,
  ETH0_TWO,
  factRecords,
  ipAddressesOutput,
  SERVER_OUTPUT,
  serverOutput,
} from "./capacityFixtures.js";

describe("parseClientFacts (real output of the facts script on a fleet host)", () => {
  it.each<[string, string, string, string, number, string[]]>([
    ["kernel default range, one address", "32768\t60999", "", ETH0_ONE, 0, ["198.18.1.2"]],
    ["after ephemeral-ports and a second address", "1024\t65535", "", ETH0_TWO, 0, ["198.18.1.2", "198.18.1.200"]],
    ["reserved ports inside the range", "1024\t65535", "8080,9000-9010,70", ETH0_ONE, 12, ["198.18.1.2"]],
  ])("%s", (_, range, reserved, eth0, reservedInRange, sources) => {
    const f = parseClientFacts(clientOutput(range.replace("\t", " "), reserved, eth0), "n0nce", "h1", "198.18.1.3");
    const [from, to] = range.split("\t").map(Number);
    expect(f.portRange).toEqual({ from, to, text: `${from} ${to}` });
    expect(f.reservedInRange).toBe(reservedInRange);
    expect(f.interface).toBe("eth0");
    expect(f.preferredSource).toBe("198.18.1.2");
    expect(f.sources).toEqual(sources);
    expect(f).toMatchObject({
      nofileSoft: "20000",
      nofileHard: "20000",
      hardNofile: 20000,
      nrOpen: 1048576,
      fileMax: 2466193,
      python: true,
    });
  });

  it("takes `unlimited` as the kernel's ceiling fs.nr_open", () => {
    expect(
      parseClientFacts(clientOutput("32768 60999", "", ETH0_ONE, "unlimited"), "n0nce", "h1", "198.18.1.3").hardNofile,
    ).toBe(1048576);
  });

  it("ignores records of another nonce (a motd, or output forging a field)", () => {
    const forged = `motd\n${factRecords({ port_range: "1 2" }, "x0nce")}${clientOutput("32768 60999", "", ETH0_ONE)}n0nce port_range 3 4\n`;
    expect(parseClientFacts(forged, "n0nce", "h1", "198.18.1.3").portRange.from).toBe(32768);
  });

  it.each<[string, string, RegExp]>([
    [
      "no port range",
      clientOutput("32768 60999", "", ETH0_ONE, "20000", { port_range: undefined }),
      /did not report port_range/,
    ],
    ["a garbled port range", clientOutput("x y", "", ETH0_ONE), /cannot read net.ipv4.ip_local_port_range/],
    [
      "no route",
      clientOutput("32768 60999", "", ETH0_ONE, "20000", { route: "RTNETLINK answers: Network is unreachable" }),
      /no route to the server 198.18.1.3: RTNETLINK answers: Network is unreachable/,
    ],
    [
      "an unreadable hard limit",
      clientOutput("32768 60999", "", ETH0_ONE, "garbage"),
      /cannot read the hard open-files limit/,
    ],
  ])("refuses %s with a clear error", (_, output, message) => {
    expect(() => parseClientFacts(output, "n0nce", "h1", "198.18.1.3")).toThrow(CapacityError);
    expect(() => parseClientFacts(output, "n0nce", "h1", "198.18.1.3")).toThrow(message);
  });
});

describe("parseServerFacts", () => {
  it("reads the queues, the limits and whether the port is free", () => {
    expect(parseServerFacts(SERVER_OUTPUT, "n0nce", "h2")).toEqual({
      somaxconn: 4096,
      maxSynBacklog: 2048,
      syncookies: "1",
      abortOnOverflow: "0",
      nofileSoft: "20000",
      nofileHard: "20000",
      hardNofile: 20000,
      nrOpen: 1048576,
      fileMax: 2466193,
      python: true,
      portListeners: 0,
    });
  });

  it.each<[string, string, Partial<ReturnType<typeof parseServerFacts>>]>([
    ["a listener already on the port", serverOutput({ port_listeners: "2" }), { portListeners: 2 }],
    ["no ss on the host", serverOutput({ port_listeners: "" }), { portListeners: null }],
    ["no python3", serverOutput({ python3: "" }), { python: false }],
  ])("%s", (_, output, expected) => {
    expect(parseServerFacts(output, "n0nce", "h2")).toMatchObject(expected);
  });
});

describe("sourceAddresses (the ip-addresses probe's output)", () => {
  const eth1 = { ifname: "eth1", addr_info: [{ family: "inet", local: "10.0.0.5", prefixlen: 24, scope: "global" }] };
  const eth0 = (infos: object[]) =>
    ipAddressesOutput(JSON.stringify({ ifname: "eth0", addr_info: infos }), JSON.stringify(eth1));
  it.each<[string, object[], 4 | 6, string[]]>([
    [
      "the preferred source comes first",
      [
        { family: "inet", local: "198.18.1.200", prefixlen: 24, scope: "global" },
        { family: "inet", local: "198.18.1.2", prefixlen: 24, scope: "global" },
      ],
      4,
      ["198.18.1.2", "198.18.1.200"],
    ],
    [
      "only the interface facing the server",
      [{ family: "inet", local: "198.18.1.2", prefixlen: 24, scope: "global" }],
      4,
      ["198.18.1.2"],
    ],
    [
      "not tentative or failed DAD, not link-local or loopback",
      [
        { family: "inet", local: "198.18.1.2", prefixlen: 24, scope: "global" },
        { family: "inet", local: "198.18.1.9", prefixlen: 24, scope: "global", tentative: true },
        { family: "inet", local: "198.18.1.8", prefixlen: 24, scope: "global", dadfailed: true },
        { family: "inet", local: "169.254.1.1", prefixlen: 16, scope: "link" },
        { family: "inet", local: "127.0.0.2", prefixlen: 8, scope: "host" },
      ],
      4,
      ["198.18.1.2"],
    ],
    [
      "the server's family only; deprecated IPv6 extras count, link-local ones don't",
      [
        { family: "inet", local: "198.18.1.2", prefixlen: 24, scope: "global" },
        { family: "inet6", local: "2001:db8::10", prefixlen: 64, scope: "global", deprecated: true },
        { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" },
      ],
      6,
      ["198.18.1.2", "2001:db8::10"],
    ],
  ])("%s", (_, infos, family, expected) => {
    expect(sourceAddresses(eth0(infos), "eth0", "198.18.1.2", family)).toEqual(expected);
  });

  it.each<[string, string]>([
    ["ip printed no JSON", 'Object "addr" is unknown'],
    ["ip is missing", "ip (iproute2) is not installed; install iproute2"],
  ])("falls back to the preferred source when %s", (_, output) => {
    expect(sourceAddresses(output, "eth0", "198.18.1.2", 4)).toEqual(["198.18.1.2"]);
  });
});

describe("parseRoute", () => {
  it.each<[string, RegExp]>([
    ["", /no route to the server 198.18.1.3: \(ip printed nothing\)/],
    ["[]", /names no interface and source address/],
    [`[{"dst":"198.18.1.3","dev":"eth0"}]`, /names no interface and source address/],
  ])("%j is refused", (text, message) => {
    expect(() => parseRoute(text, "h1", "198.18.1.3")).toThrow(message);
  });
});

describe("portsInRange", () => {
  it.each<[Array<{ from: number; to: number }>, number, number, number]>([
    [[], 32768, 60999, 0],
    [[{ from: 22, to: 22 }], 32768, 60999, 0],
    [
      [
        { from: 8080, to: 8080 },
        { from: 9000, to: 9010 },
      ],
      1024,
      65535,
      12,
    ],
    [[{ from: 60990, to: 61010 }], 32768, 60999, 10],
    [[{ from: 0, to: 65535 }], 32768, 60999, 28232],
  ])("%j in %i-%i = %i", (ranges, from, to, expected) => {
    expect(portsInRange(ranges, from, to)).toBe(expected);
  });
});

describe("facts scripts", () => {
  it("quote what reaches the shell", () => {
    const client = clientFactsScript("n0nce", "198.18.1.3");
    expect(client).toContain("ip -j route get 198.18.1.3");
    expect(clientFactsScript("n0nce", "a'b")).toContain(`ip -j route get 'a'\\''b'`);
    expect(serverFactsScript("n0nce", 5201)).toContain(`ss -Hltn 'sport = :5201'`);
  });

  it("parseFactRecords keeps values with spaces, trims them, and drops other output", () => {
    const f = parseFactRecords(
      `motd line\n${factRecords({ port_range: "1024\t65535 ", reserved_ports: "" })}n0nce other 1\n`,
      "n0nce",
    );
    expect([...f]).toEqual([
      ["port_range", "1024\t65535"],
      ["reserved_ports", ""],
    ]);
  });

  it.skipIf(spawnSync("ip", ["-V"]).status !== 0)(
    "run by sh on this machine (loopback), the client's answer parses",
    () => {
      const r = spawnSync("/bin/sh", ["-s"], {
        input: clientFactsScript("n0nce", "127.0.0.1"),
        encoding: "utf8",
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      });
      expect(r.status, r.stderr).toBe(0);
      const f = parseClientFacts(r.stdout, "n0nce", "local", "127.0.0.1");
      expect(f).toMatchObject({ interface: "lo", preferredSource: "127.0.0.1", sources: ["127.0.0.1"] });
      expect(f.portRange.to).toBeGreaterThan(f.portRange.from);
      expect(f.hardNofile).toBeGreaterThan(0);
    },
  );
});
