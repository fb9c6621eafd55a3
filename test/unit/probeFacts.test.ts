import { describe, expect, it } from "vitest";
import {
  clientFactsScript, parseClientFacts, parseFactLines, parseRoute, parseServerFacts, portsInRange, ProbeError, serverFactsScript, sourceAddresses,
} from "../../src/probe/facts.js";
import { clientOutput, ETH0_ONE, ETH0_TWO, ROUTE, SERVER_OUTPUT } from "./probeFixtures.js";

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
    expect(f).toMatchObject({ nofileSoft: "20000", nofileHard: "20000", hardNofile: 20000, nrOpen: 1048576, fileMax: 2466193, python: true });
  });

  it("takes `unlimited` as the kernel's ceiling fs.nr_open", () => {
    expect(parseClientFacts(clientOutput("32768 60999", "", ETH0_ONE, "unlimited"), "n0nce", "h1", "198.18.1.3").hardNofile).toBe(1048576);
  });

  it("ignores lines of another nonce (a motd, or output forging a field)", () => {
    const forged = `x0nce port_range 1 2\n${clientOutput("32768 60999", "", ETH0_ONE)}n0nce\n`;
    expect(parseClientFacts(forged, "n0nce", "h1", "198.18.1.3").portRange.from).toBe(32768);
  });

  it.each<[string, string, RegExp]>([
    ["no port range", clientOutput("32768 60999", "", ETH0_ONE).replace(/n0nce port_range.*\n/, ""), /did not report port_range/],
    ["a garbled port range", clientOutput("x y", "", ETH0_ONE), /cannot read net.ipv4.ip_local_port_range/],
    ["no route", clientOutput("32768 60999", "", ETH0_ONE).replace(ROUTE, "RTNETLINK answers: Network is unreachable"), /no route to the server 198.18.1.3: RTNETLINK answers: Network is unreachable/],
    ["an unreadable hard limit", clientOutput("32768 60999", "", ETH0_ONE, "garbage"), /cannot read the hard open-files limit/],
  ])("refuses %s with a clear error", (_, output, message) => {
    expect(() => parseClientFacts(output, "n0nce", "h1", "198.18.1.3")).toThrow(ProbeError);
    expect(() => parseClientFacts(output, "n0nce", "h1", "198.18.1.3")).toThrow(message);
  });
});

describe("parseServerFacts", () => {
  it("reads the queues, the limits and whether the port is free", () => {
    expect(parseServerFacts(SERVER_OUTPUT, "n0nce", "h2")).toEqual({
      somaxconn: 4096, maxSynBacklog: 2048, syncookies: "1", abortOnOverflow: "0", nofileSoft: "20000", nofileHard: "20000",
      hardNofile: 20000, nrOpen: 1048576, fileMax: 2466193, python: true, portListeners: 0,
    });
  });

  it.each<[string, string, Partial<ReturnType<typeof parseServerFacts>>]>([
    ["a listener already on the port", SERVER_OUTPUT.replace("port_listeners 0", "port_listeners 2"), { portListeners: 2 }],
    ["no ss on the host", SERVER_OUTPUT.replace("port_listeners 0", "port_listeners"), { portListeners: null }],
    ["no python3", SERVER_OUTPUT.replace("python3 /usr/bin/python3", "python3 "), { python: false }],
  ])("%s", (_, output, expected) => {
    expect(parseServerFacts(output, "n0nce", "h2")).toMatchObject(expected);
  });
});

describe("sourceAddresses", () => {
  const eth0 = (infos: object[]) => JSON.stringify([{ ifname: "eth0", addr_info: infos }, { ifname: "eth1", addr_info: [{ family: "inet", local: "10.0.0.5", scope: "global" }] }]);
  it.each<[string, object[], "inet" | "inet6", string[]]>([
    ["the preferred source comes first", [{ family: "inet", local: "198.18.1.200", scope: "global" }, { family: "inet", local: "198.18.1.2", scope: "global" }], "inet", ["198.18.1.2", "198.18.1.200"]],
    ["only the interface facing the server", [{ family: "inet", local: "198.18.1.2", scope: "global" }], "inet", ["198.18.1.2"]],
    ["not tentative or failed DAD, not link scope", [
      { family: "inet", local: "198.18.1.2", scope: "global" },
      { family: "inet", local: "198.18.1.9", scope: "global", tentative: true },
      { family: "inet", local: "198.18.1.8", scope: "global", dadfailed: true },
      { family: "inet", local: "169.254.1.1", scope: "link" },
    ], "inet", ["198.18.1.2"]],
    ["the server's family only; deprecated IPv6 extras count", [
      { family: "inet", local: "198.18.1.2", scope: "global" },
      { family: "inet6", local: "2001:db8::10", scope: "global", deprecated: true },
    ], "inet6", ["198.18.1.2", "2001:db8::10"]],
  ])("%s", (_, infos, family, expected) => {
    expect(sourceAddresses(eth0(infos), "eth0", "198.18.1.2", family)).toEqual(expected);
  });

  it("falls back to the preferred source when ip printed no JSON", () => {
    expect(sourceAddresses("Object \"addr\" is unknown", "eth0", "198.18.1.2", "inet")).toEqual(["198.18.1.2"]);
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
    [[{ from: 8080, to: 8080 }, { from: 9000, to: 9010 }], 1024, 65535, 12],
    [[{ from: 60990, to: 61010 }], 32768, 60999, 10],
    [[{ from: 0, to: 65535 }], 32768, 60999, 28232],
  ])("%j in %i-%i = %i", (ranges, from, to, expected) => {
    expect(portsInRange(ranges, from, to)).toBe(expected);
  });
});

describe("facts scripts", () => {
  it("quote what reaches the shell and tag every line with the nonce", () => {
    const client = clientFactsScript("n0nce", "198.18.1.3");
    expect(client).toContain("ip -j route get 198.18.1.3");
    expect(clientFactsScript("n0nce", "a'b")).toContain(`ip -j route get 'a'\\''b'`);
    expect(serverFactsScript("n0nce", 5201)).toContain(`ss -Hltn 'sport = :5201'`);
  });

  it("parseFactLines keeps values with spaces and drops other lines", () => {
    const f = parseFactLines("motd line\nn0nce port_range 1024 65535 \nn0nce reserved_ports \n", "n0nce");
    expect([...f]).toEqual([["port_range", "1024 65535"], ["reserved_ports", ""]]);
  });
});
