import { describe, expect, it } from "vitest";
import { plural, thousands } from "../../src/output/words.js";

describe("thousands", () => {
  it.each<[number | bigint, string]>([
    [0, "0"],
    [999, "999"],
    [28_232, "28,232"],
    [1_048_576, "1,048,576"],
    [1_048_576n, "1,048,576"],
    [18_446_744_073_709_551_615n, "18,446,744,073,709,551,615"],
  ])("%s → %s", (n, expected) => {
    expect(thousands(n)).toBe(expected);
  });
});

describe("plural", () => {
  it.each<[number | bigint, string, string | undefined, string]>([
    [1, "source IP", undefined, "1 source IP"],
    [2, "source IP", undefined, "2 source IPs"],
    [0, "socket", undefined, "0 sockets"],
    [28_232, "socket", undefined, "28,232 sockets"],
    [1, "process", undefined, "1 process"],
    [8, "server process", undefined, "8 server processes"],
    [2, "patch", undefined, "2 patches"],
    [3, "entry", "entries", "3 entries"],
    [1, "entry", "entries", "1 entry"],
    [1n, "file", undefined, "1 file"],
    [2n, "file", undefined, "2 files"],
  ])("plural(%s, %j, %j) = %j", (n, word, pluralWord, expected) => {
    expect(plural(n, word, pluralWord)).toBe(expected);
  });
});
