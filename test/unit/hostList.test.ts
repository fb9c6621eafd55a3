import { describe, expect, it } from "vitest";
import { foldHosts } from "../../src/output/hostList.js";

const range = (prefix: string, from: number, to: number, width = 0) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${String(from + i).padStart(width, "0")}`);

describe("foldHosts", () => {
  it.each<[string, string[], string]>([
    ["one host", ["web01"], "web01"],
    ["two stay as they are", ["h1", "h2"], "h1, h2"],
    ["three or more fold", ["h1", "h2", "h3"], "h[1:3]"],
    ["zero-padded (web09, web10 fold too)", range("web", 1, 50, 2), "web[01:50]"],
    ["a gap makes two runs", [...range("web", 1, 3, 2), ...range("web", 5, 9, 2)], "web[01:03], web[05:09]"],
    ["a suffix is kept", ["db1.dc", "db2.dc", "db3.dc"], "db[1:3].dc"],
    ["names without numbers stay, in their place", ["lb", "h1", "h2", "h3", "bastion"], "lb, h[1:3], bastion"],
    ["out of order input folds, ordered by its first host", ["h3", "x", "h1", "h2"], "h[1:3], x"],
    ["padded and unpadded never mix", ["n1", "n2", "n03"], "n1, n2, n03"],
    ["prefixes are separate", ["a1", "b2", "a2", "a3", "b3", "b4"], "a[1:3], b[2:4]"],
  ])("%s", (_what, names, expected) => {
    expect(foldHosts(names)).toBe(expected);
  });

  it("150 hosts make one short line", () => {
    expect(foldHosts(range("api", 1, 150, 3))).toBe("api[001:150]");
  });
});
