import { describe, expect, it } from "vitest";
import {
  describeShard,
  describeShardBy,
  parseShard,
  selectionDigest,
  selectShard,
  shardOfName,
  ShardError,
  type ShardSpec,
} from "../../src/rollout/shard.js";

/** Thrown problems, one a line; [] when it parses. */
function problemsOf(text: string, by?: string): string[] {
  try {
    if (by === undefined) parseShard(text);
    else parseShard(text, by);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ShardError);
    return (err as Error).message.split("\n");
  }
}

const names = (n: number, prefix = "host-") =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(4, "0")}`);

describe("parseShard", () => {
  it.each<[string, string | undefined, ShardSpec]>([
    ["1/1", undefined, { index: 1, count: 1, by: "name" }],
    ["2/3", undefined, { index: 2, count: 3, by: "name" }],
    ["3/3", "name", { index: 3, count: 3, by: "name" }],
    [" 2/3 ", "name", { index: 2, count: 3, by: "name" }],
    ["12/40", "name", { index: 12, count: 40, by: "name" }],
    ["2/3", "group:east,west,central", { index: 2, count: 3, by: { groups: ["east", "west", "central"] } }],
    ["1/2", "group: east , west ", { index: 1, count: 2, by: { groups: ["east", "west"] } }],
    ["1/2", "group:east,,west,", { index: 1, count: 2, by: { groups: ["east", "west"] } }],
    ["1/1", "group:all", { index: 1, count: 1, by: { groups: ["all"] } }],
  ])("%j by %j", (text, by, spec) => {
    expect(by === undefined ? parseShard(text) : parseShard(text, by)).toEqual(spec);
  });

  it.each<[string, string, string | undefined, RegExp[]]>([
    ["K out of range: 0", "0/3", undefined, [/^--shard 0\/3: K must be from 1 to N/]],
    ["K beyond N", "4/3", undefined, [/^--shard 4\/3: K must be from 1 to N/]],
    ["N of 0", "0/0", undefined, [/^--shard 0\/0: K must be from 1 to N \(N at least 1\)/]],
    ["N of 0, K of 1", "1/0", undefined, [/^--shard 1\/0: K must be from 1 to N/]],
    ["letters", "a/b", undefined, [/^--shard "a\/b" is not K\/N/]],
    ["a negative K", "-1/3", undefined, [/is not K\/N/]],
    ["no slash", "2", undefined, [/^--shard "2" is not K\/N/]],
    ["three numbers", "1/2/3", undefined, [/is not K\/N/]],
    ["empty", "", undefined, [/^--shard "" is not K\/N/]],
    ["a fraction", "1.5/3", undefined, [/is not K\/N/]],
    [
      "fewer groups than parts",
      "1/3",
      "group:east,west",
      [/^--shard-by group:east,west names 2 groups, but --shard 1\/3 makes 3 parts: one group per part$/],
    ],
    ["more groups than parts", "1/2", "group:a,b,c", [/names 3 groups, but --shard 1\/2 makes 2 parts/]],
    ["a group twice", "1/3", "group:east,west,east", [/^--shard-by group:east,west,east: a group is listed twice$/]],
    ["no group named", "1/1", "group:", [/^--shard-by group:: name the groups, one per part/]],
    ["only commas", "1/1", "group:, ,", [/name the groups/]],
    ["an unknown --shard-by", "1/3", "hash", [/^--shard-by "hash" is neither "name" nor "group:G1,G2,…"$/]],
    ["group without the colon", "1/3", "group", [/neither "name" nor "group:/]],
    ["a case that differs", "1/3", "Name", [/--shard-by "Name" is neither/]],
    // every problem at once
    ["a bad K and an unknown --shard-by", "0/3", "hash", [/K must be from 1 to N/, /--shard-by "hash" is neither/]],
    ["a bad K/N and an unknown --shard-by", "a/b", "bogus", [/is not K\/N/, /--shard-by "bogus" is neither/]],
    ["K beyond N and a group count that differs", "4/3", "group:a,b", [/K must be from 1 to N/, /names 2 groups/]],
    ["not K/N and no group", "x", "group:", [/is not K\/N/, /name the groups/]],
    ["a bad K and a group twice", "0/2", "group:a,a", [/K must be from 1 to N/, /listed twice/]],
    [
      "a group twice and a group count that differs",
      "1/3",
      "group:a,a",
      [/group:a,a: a group is listed twice/, /names 2 groups, but --shard 1\/3 makes 3 parts/],
    ],
  ])("refuses %s (%j, %j), every problem at once", (_what, text, by, expected) => {
    const problems = problemsOf(text, by);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((pattern, i) => expect(problems[i]).toMatch(pattern));
  });

  it("does not compare the group count with a --shard that is not K/N", () => {
    expect(problemsOf("a/b", "group:x,y")).toEqual(['--shard "a/b" is not K/N (e.g. 2/3: the second of three parts)']);
  });
});

describe("describeShard and describeShardBy", () => {
  it.each<[ShardSpec, string, string]>([
    [{ index: 2, count: 3, by: "name" }, "2/3", "name"],
    [{ index: 1, count: 1, by: "name" }, "1/1", "name"],
    [
      { index: 2, count: 3, by: { groups: ["east", "west", "central"] } },
      "2/3 (group west)",
      "group:east,west,central",
    ],
    [
      { index: 3, count: 3, by: { groups: ["east", "west", "central"] } },
      "3/3 (group central)",
      "group:east,west,central",
    ],
  ])("%j", (spec, described, by) => {
    expect(describeShard(spec)).toBe(described);
    expect(describeShardBy(spec)).toBe(by);
  });

  it("describeShardBy gives back what parseShard takes", () => {
    for (const by of ["name", "group:east,west,central"]) expect(describeShardBy(parseShard("1/3", by))).toBe(by);
  });
});

describe("shardOfName", () => {
  const thousand = names(1000);

  it("is deterministic: the same name, the same part", () => {
    for (const n of thousand.slice(0, 50))
      for (const count of [1, 2, 3, 7, 64]) {
        // an equal string built anew, as another job would read it from its own inventory
        expect(shardOfName(n, count)).toBe(shardOfName([...n].join(""), count));
      }
  });

  it.each([1, 2, 3, 4, 5, 6, 7])("puts every host in exactly one of %i parts, each from 1 to N", (count) => {
    const parts = thousand.map((n) => shardOfName(n, count));
    for (const p of parts) {
      expect(Number.isInteger(p)).toBe(true);
      expect(p).toBeGreaterThanOrEqual(1);
      expect(p).toBeLessThanOrEqual(count);
    }
    // As selectShard takes them: every host in one part and one only, every part used.
    const hosts = thousand.map((name) => ({ name, groups: [] as string[] }));
    const selected = Array.from({ length: count }, (_, i) => selectShard(hosts, { index: i + 1, count, by: "name" }));
    const seen = selected.flat().map((h) => h.name);
    expect(seen).toHaveLength(1000);
    expect(new Set(seen).size).toBe(1000);
    for (const part of selected) expect(part.length).toBeGreaterThan(0);
  });

  it("is roughly balanced: with 3 parts each holds 1000/3 ±25% of 1000 hosts", () => {
    const sizes = [1, 2, 3].map((k) => thousand.filter((n) => shardOfName(n, 3) === k).length);
    expect(sizes.reduce((a, b) => a + b)).toBe(1000);
    for (const s of sizes) {
      expect(s).toBeGreaterThanOrEqual(Math.floor((1000 / 3) * 0.75));
      expect(s).toBeLessThanOrEqual(Math.ceil((1000 / 3) * 1.25));
    }
  });

  it.each([2, 3, 5])("adding hosts never moves an existing host (N=%i)", (count) => {
    const before = names(300);
    const after = [...names(200, "new-"), ...before.slice(0, 150), ...names(100, "db"), ...before.slice(150)];
    const partsBefore = new Map(before.map((n) => [n, shardOfName(n, count)]));
    for (const n of before) expect(shardOfName(n, count)).toBe(partsBefore.get(n));
    for (let k = 1; k <= count; k++) {
      const spec: ShardSpec = { index: k, count, by: "name" };
      const had = selectShard(
        before.map((name) => ({ name, groups: [] })),
        spec,
      ).map((h) => h.name);
      const has = selectShard(
        after.map((name) => ({ name, groups: [] })),
        spec,
      ).map((h) => h.name);
      expect(has.filter((n) => before.includes(n)).sort()).toEqual([...had].sort());
    }
  });

  it("depends on the name only, not its case or neighbours", () => {
    const one = shardOfName("web01", 1000);
    expect(shardOfName("web01", 1000)).toBe(one);
    // Two different names may share a part, but across a thousand parts these differ.
    expect(new Set(["web01", "WEB01", "web01.example.com", "web1"].map((n) => shardOfName(n, 1000))).size).toBe(4);
  });
});

describe("selectShard", () => {
  type H = { name: string; groups: string[] };
  const h = (name: string, ...groups: string[]): H => ({ name, groups: ["all", ...groups] });
  const spec = (index: number, groups: string[]): ShardSpec => ({ index, count: groups.length, by: { groups } });

  const fleet: H[] = [
    h("w3", "west"),
    h("e1", "east"),
    h("c1", "central", "db"),
    h("w1", "west", "db"),
    h("e2", "east"),
    h("c2", "central"),
    h("w2", "west"),
  ];

  it.each<[number, string[]]>([
    [1, ["e1", "e2"]],
    [2, ["w3", "w1", "w2"]],
    [3, ["c1", "c2"]],
  ])("by group: part %i is its group's hosts, in the given order", (index, expected) => {
    const part = selectShard(fleet, spec(index, ["east", "west", "central"]));
    expect(part.map((x) => x.name)).toEqual(expected);
    // the same objects, not copies
    for (const x of part) expect(fleet).toContain(x);
  });

  it("by name: the hosts whose name hashes to part K, in the given order", () => {
    const hosts = names(60).map((n) => h(n));
    for (let k = 1; k <= 3; k++) {
      const part = selectShard(hosts, { index: k, count: 3, by: "name" });
      expect(part.map((x) => x.name)).toEqual(hosts.filter((x) => shardOfName(x.name, 3) === k).map((x) => x.name));
    }
  });

  it("by name, ignores groups", () => {
    const hosts = [h("a", "x"), h("b"), h("c", "x", "y")];
    expect(selectShard(hosts, { index: 1, count: 1, by: "name" })).toEqual(hosts);
  });

  it.each<[string, H[], RegExp[]]>([
    [
      "hosts in no shard group",
      [h("h1"), h("e1", "east"), h("h2"), h("h3"), h("w1", "west")],
      [
        /^h\[1:3\]: in none of the shard groups \(east, west\); no job would run them\. Add them to one, or leave them out with --limit$/,
      ],
    ],
    [
      "hosts in two shard groups",
      [h("e1", "east"), h("h1", "east", "west"), h("h2", "west", "east"), h("h3", "east", "west"), h("h9", "west")],
      [/^h\[1:3\]: in more than one shard group \(east, west\); two jobs would run them\. Make the groups disjoint$/],
    ],
    [
      "both at once",
      [h("db1", "east", "west"), h("x"), h("w1", "west"), h("db2", "west", "east"), h("y")],
      [/^x, y: in none of the shard groups/, /^db1, db2: in more than one shard group/],
    ],
    ["one host in none", [h("e1", "east"), h("lonely"), h("w1", "west")], [/^lonely: in none of the shard groups/]],
  ])("by group, refuses %s, naming them folded", (_what, hosts, expected) => {
    for (const index of [1, 2]) {
      let error: unknown;
      try {
        selectShard(hosts, spec(index, ["east", "west"]));
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ShardError);
      const lines = (error as Error).message.split("\n");
      expect(lines).toHaveLength(expected.length);
      expected.forEach((pattern, i) => expect(lines[i]).toMatch(pattern));
    }
  });

  it("by group, every host of a disjoint grouping is in exactly one part", () => {
    const parts = [1, 2, 3].map((k) => selectShard(fleet, spec(k, ["east", "west", "central"])).map((x) => x.name));
    expect(parts.flat().sort()).toEqual(fleet.map((x) => x.name).sort());
  });

  it("of no hosts, is none", () => {
    expect(selectShard([], spec(1, ["east"]))).toEqual([]);
    expect(selectShard([], { index: 1, count: 2, by: "name" })).toEqual([]);
  });
});

describe("selectionDigest", () => {
  it.each<[string, string[], string[]]>([
    ["another order", ["a", "b", "c"], ["b", "a", "c"]],
    ["another name", ["a", "b", "c"], ["a", "b", "d"]],
    ["one host more", ["a", "b"], ["a", "b", "c"]],
    ["one host fewer", ["a", "b", "c"], ["a", "b"]],
    ["names joined differently", ["ab", "c"], ["a", "bc"]],
    ["a name split", ["web01"], ["web0", "1"]],
    ["none against one empty name", [], [""]],
  ])("changes with %s", (_what, a, b) => {
    expect(selectionDigest(a)).not.toBe(selectionDigest(b));
  });

  it("is the same for the same names in the same order, 16 hex digits", () => {
    const d = selectionDigest(names(100));
    expect(d).toMatch(/^[0-9a-f]{16}$/);
    expect(selectionDigest(names(100))).toBe(d);
    expect(selectionDigest([...names(100)])).toBe(d);
  });
});
