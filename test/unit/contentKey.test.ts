import { describe, expect, it } from "vitest";
import { contentKey } from "../../src/contentKey.js";

describe("contentKey: shared only when equal", () => {
  it.each<[string, unknown, unknown, boolean]>([
    ["equal objects", { a: 1, b: ["x"] }, { a: 1, b: ["x"] }, true],
    ["another value", { a: 1 }, { a: 2 }, false],
    ["Maps with other entries", new Map([["eth0", true]]), new Map([["eth0", false]]), false],
    ["equal Maps", { m: new Map([["eth0", [1]]]) }, { m: new Map([["eth0", [1]]]) }, true],
    ["Sets with other members", new Set([1, 2]), new Set([1, 3]), false],
    ["a Set and an array", new Set([1]), [1], false],
    ["bigints", { n: 1n }, { n: 2n }, false],
    ["undefined and missing", { a: undefined }, {}, false],
    ["key order", { a: 1, b: 2 }, { b: 2, a: 1 }, false],
  ])("%s", (_what, a, b, same) => {
    expect(contentKey(a) === contentKey(b)).toBe(same);
  });
});
