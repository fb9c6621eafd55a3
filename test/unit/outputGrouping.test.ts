import { describe, expect, it } from "vitest";
import { compactValues, renderShapes, shapeKey, shapeOf } from "../../src/output/details.js";
import { groupOutcomes, outcomeKey, type Outcome } from "../../src/output/outcomes.js";
import { foldHostsWithin, foldRuns, hostsTitle } from "../../src/output/hostList.js";

const detailsOf = (text: string, host = "web01") => shapeOf(text, host).details.map((d) => `${d.kind}:${d.value}`);

describe("shapeOf: the per-host details of a message", () => {
  it.each<[string, string, string[]]>([
    ["an address and its port", "connection refused by 198.18.0.5:22", ["ip:198.18.0.5", "number:22"]],
    ["an IPv6 address", "no route to fe80::1 on eth0", ["ip:fe80::1"]],
    ["a time is numbers, not an IPv6 address", "at 12:34:56", ["number:12", "number:34", "number:56"]],
    ["a SHA256 fingerprint", `host key SHA256:${"a".repeat(43)} changed`, [`fingerprint:SHA256:${"a".repeat(43)}`]],
    ["the host's own name", "lockout on web01.", ["host:web01"]],
    ["a number with thousands separators", "fs.nr_open 1,048,576", ["number:1,048,576"]],
    ["a long hex id", "container deadbeef0123 died", ["id:deadbeef0123"]],
    [
      "a duration, in whatever units",
      "detection 251 s (4 min 11 s), 2 h 5 min",
      ["duration:251 s", "duration:4 min 11 s", "duration:2 h 5 min"],
    ],
    ["a count of things is a number, not a duration", "3 hosts, 5 seconds", ["number:3", "number:5"]],
    ["digits inside a word are not details", "net.ipv4.tcp_tw_reuse and sha256sum", []],
  ])("%s", (_what, text, expected) => {
    expect(detailsOf(text)).toEqual(expected);
  });

  it("keeps terminal colors as text, never as details", () => {
    expect(shapeOf("\x1b[31mFAILED\x1b[0m: 3", "h1").details).toEqual([{ kind: "number", value: "3" }]);
  });

  it("does not take a one-letter or numeric host name for the host (too many false matches)", () => {
    expect(detailsOf("a b", "a")).toEqual([]);
  });

  it("gives messages that differ only in details one key, and others different keys", () => {
    const key = (text: string, host: string) => shapeKey(shapeOf(text, host));
    expect(key("web01: refused by 10.0.0.1:22", "web01")).toBe(key("web02: refused by 10.0.0.2:22", "web02"));
    expect(key("refused by 10.0.0.1", "a1")).not.toBe(key("timed out at 10.0.0.1", "a1"));
    expect(key("port 22", "a1")).not.toBe(key("port fe80::1", "a1"));
  });

  it("puts the values of each detail back compactly", () => {
    const shapes = [5, 6, 7, 8, 9].map((n) => shapeOf(`refused by 198.18.0.${n}:22`, `h${n}`));
    expect(renderShapes(shapes)).toBe("refused by 198.18.0.[5:9]:22");
  });

  it("puts durations back as a range, a few as a list, many in mixed units as their span", () => {
    const render = (values: number[]) =>
      renderShapes(
        values.map((s) => shapeOf(`after ${s} s (${s >= 60 ? `${Math.floor(s / 60)} min` : `${s} s`})`, "h")),
      );
    expect(shapeKey(shapeOf("(5 min)", "h"))).toBe(shapeKey(shapeOf("(4 min 11 s)", "h")));
    expect(render([5, 6, 7])).toBe("after [5:7] s ([5:7] s)");
    expect(render([30, 90])).toBe("after {30 s, 90 s} ({30 s, 1 min})");
    expect(render([10, 20, 30, 40, 120])).toBe("after [10 s … 120 s] ([10 s … 2 min])");
  });
});

describe("compactValues", () => {
  it.each<[string, string[], string]>([
    ["one value", ["22", "22"], "22"],
    ["two values", ["fe80::1", "fe80::2"], "{fe80::1, fe80::2}"],
    ["a run folds", ["198.18.0.5", "198.18.0.6", "198.18.0.7"], "198.18.0.[5:7]"],
    ["many, counted", ["4711", "4790", "5023", "6001", "7002"], "{4711, 4790, 5023, … 2 more}"],
    ["ranges count their values", ["1", "2", "3", "9", "20", "30", "40", "41", "42"], "{[1:3], 9, 20, … 4 more}"],
    [
      "long values are cut",
      [`SHA256:${"a".repeat(43)}`, `SHA256:${"b".repeat(43)}`],
      `{SHA256:${"a".repeat(16)}…, SHA256:${"b".repeat(16)}…}`,
    ],
  ])("%s", (_what, values, expected) => {
    expect(compactValues(values)).toBe(expected);
  });
});

describe("groupOutcomes", () => {
  const fail = (host: string, text: string, kind = "failed"): Outcome<string> => ({
    host,
    item: host,
    kind,
    text,
    perHostDetails: true,
  });
  const ok = (host: string, text: string): Outcome<string> => ({
    host,
    item: host,
    kind: "changed",
    text,
    perHostDetails: false,
  });

  it("puts failures alike but for per-host details on one line, in the order of their first host", () => {
    const groups = groupOutcomes([
      fail("h1", "refused by 10.0.0.1"),
      fail("x", "sudo: a password is required"),
      fail("h2", "refused by 10.0.0.2"),
      fail("h3", "refused by 10.0.0.3"),
    ]);
    expect(groups.map((g) => [g.hosts, g.text])).toEqual([
      [["h1", "h2", "h3"], "refused by 10.0.0.[1:3]"],
      [["x"], "sudo: a password is required"],
    ]);
  });

  it("keeps statuses apart", () => {
    expect(groupOutcomes([fail("h1", "gone"), fail("h2", "gone", "unreachable")])).toHaveLength(2);
  });

  it("keeps successes apart when their counts differ", () => {
    const groups = groupOutcomes([
      ok("a", "changed (3 applied)"),
      ok("b", "changed (3 applied)"),
      ok("c", "changed (4 applied)"),
    ]);
    expect(groups.map((g) => g.hosts)).toEqual([["a", "b"], ["c"]]);
  });

  it("outcomeKey tells which outcomes share a line", () => {
    expect(outcomeKey(fail("h1", "by 10.0.0.1"))).toBe(outcomeKey(fail("h2", "by 10.0.0.2")));
    expect(outcomeKey(ok("h1", "1 applied"))).not.toBe(outcomeKey(ok("h2", "2 applied")));
  });
});

describe("host lists", () => {
  it("foldRuns counts the names of each piece", () => {
    expect(foldRuns(["h1", "h2", "h3", "db", "h5"])).toEqual([
      { text: "h[1:3]", count: 3 },
      { text: "db", count: 1 },
      { text: "h5", count: 1 },
    ]);
  });

  it("hostsTitle names one host alone, several folded with their count", () => {
    expect(hostsTitle(["web01"])).toBe("web01");
    expect(hostsTitle(["h1", "h2", "h3"])).toBe("h[1:3] (3 hosts)");
  });

  it("foldHostsWithin cuts a long list and counts the hosts left", () => {
    const scattered = Array.from({ length: 100 }, (_, i) => `node${i * 2}`);
    const text = foldHostsWithin(scattered, 40);
    expect(text.length).toBeLessThan(60);
    expect(text).toMatch(/^node0, node2, .* … \d+ more$/);
    const shown = text.split(", ").length - 1;
    expect(text).toContain(`… ${100 - shown} more`);
    expect(foldHostsWithin(["h1", "h2"], 40)).toBe("h1, h2");
  });
});
