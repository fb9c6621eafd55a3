import { describe, expect, it } from "vitest";
import { CapacityError } from "../../src/capacity/facts.js";
import { parseCleanup, parseClientResult, parseServerResult } from "../../src/capacity/remote.js";
import { CLIENT_28K, CLIENT_EMFILE, CLIENT_REFUSED, CLIENT_TWO_SOURCES, SERVER_28K } from "./capacityFixtures.js";

describe("parseClientResult / parseServerResult (real helper output)", () => {
  it("sums nothing itself: it returns every worker's report as printed", () => {
    const c = parseClientResult(CLIENT_28K, "", "provision-probe-5f0c2a9d41e7-client", "h1");
    expect(c.workers).toHaveLength(8);
    expect(c.workers.reduce((n, w) => n + (w?.held ?? 0), 0)).toBe(28_232);
    expect(c.establishedAtHoldStart).toBe(28_232);
    const s = parseServerResult(SERVER_28K, "", "provision-probe-5f0c2a9d41e7-server", "h2");
    expect(s.workers.reduce((n, w) => n + (w?.accepted ?? 0), 0)).toBe(28_232);
    expect(s.netstat.ListenOverflows).toBe(0);
  });

  it.each<[string, string]>([
    ["two sources", CLIENT_TWO_SOURCES],
    ["refused", CLIENT_REFUSED],
    ["EMFILE", CLIENT_EMFILE],
  ])("accepts the %s result", (_, out) => {
    expect(
      parseClientResult(`motd\n${out}`, "", "provision-probe-0123456789ab-client", "h1").workers.length,
    ).toBeGreaterThan(0);
  });

  it("keeps a worker that died without a report as null", () => {
    const out = CLIENT_TWO_SOURCES.replace(/\{"held": 2, "target": 2.*?"rampSeconds": 0\.0\}/, "null");
    expect(parseClientResult(out, "", "provision-probe-0123456789ab-client", "h1").workers[1]).toBeNull();
  });

  it.each<[string, string, string, RegExp]>([
    [
      "no result line: the helper's stderr explains",
      "",
      "Traceback (most recent call last):\n  ...\nMemoryError",
      /h1: the probe helper ended without a result:\n.*MemoryError/s,
    ],
    ["nothing at all", "", "", /ended without a result:\n\(no output\)/],
    [
      "another marker's result (a forged or stale line)",
      CLIENT_TWO_SOURCES.replace("0123456789ab", "ffffffffffff"),
      "",
      /ended without a result/,
    ],
    ["a malformed result", 'PROBE-RESULT provision-probe-0123456789ab-client {"workers": [\n', "", /malformed result/],
    [
      "a result of the wrong shape",
      'PROBE-RESULT provision-probe-0123456789ab-client {"workers": [{"held": -1}]}\n',
      "",
      /unexpected shape/,
    ],
  ])("refuses %s", (_, stdout, stderr, message) => {
    expect(() => parseClientResult(stdout, stderr, "provision-probe-0123456789ab-client", "h1")).toThrow(CapacityError);
    expect(() => parseClientResult(stdout, stderr, "provision-probe-0123456789ab-client", "h1")).toThrow(message);
  });

  it("turns the server's listen error into a fix", () => {
    const out = `PROBE-RESULT m-server {"error": "cannot listen on port 5201: EADDRINUSE (Address already in use)"}\n`;
    expect(() => parseServerResult(out, "", "m-server", "h2")).toThrow(
      "h2: cannot listen on port 5201: EADDRINUSE (Address already in use); pick a free port with --port",
    );
  });
});

describe("parseCleanup", () => {
  it.each<[string, { found: number; left: number; sockets: number | null }]>([
    ["PROBE-CLEANUP m-client 0 0 0\n", { found: 0, left: 0, sockets: 0 }],
    ["PROBE-CLEANUP m-client 3 0 12\n", { found: 3, left: 0, sockets: 12 }],
    ["PROBE-CLEANUP m-client 0 0 \n", { found: 0, left: 0, sockets: null }],
  ])("%j", (out, expected) => {
    expect(parseCleanup(out, "m-client", "h1")).toEqual(expected);
  });

  it("refuses output without its marker", () => {
    expect(() => parseCleanup("PROBE-CLEANUP other 0 0 0\n", "m-client", "h1")).toThrow(/printed no result/);
  });
});
