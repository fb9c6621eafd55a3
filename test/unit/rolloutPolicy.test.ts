import { describe, expect, it } from "vitest";
import { batchSizes, exceeds, parseAmount, partition, resolveAmount, AmountError } from "../../src/rollout/policy.js";

describe("batchSizes", () => {
  it.each([
    ["one batch of everything", 10, ["100%"], [10]],
    ["canary, then 10%, 50%, 100%", 20, [1, "10%", "50%", "100%"], [1, 2, 10, 7]],
    ["the last size repeats", 10, [1, 3], [1, 3, 3, 3]],
    ["a percentage that rounds to 0 becomes 1", 5, ["10%"], [1, 1, 1, 1, 1]],
    ["percentages round down", 15, ["10%"], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    ["30% of 7 hosts is 2", 7, ["30%"], [2, 2, 2, 1]],
    ["a batch larger than what is left is cut", 4, [3, 3], [3, 1]],
    ["no batches given means all at once", 6, [], [6]],
    ["no hosts, no batches", 0, [1, "50%"], []],
    ["a 0 count still makes progress", 3, [0], [1, 1, 1]],
    ["200 hosts in Ansible's example list", 200, [1, 5, "10%", "20%"], [1, 5, 20, 40, 40, 40, 40, 14]],
  ])("%s: %i hosts, %j → %j", (_what, total, batches, expected) => {
    const sizes = batchSizes(total, batches);
    expect(sizes).toEqual(expected);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(total);
    expect(sizes.every((s) => s >= 1)).toBe(true);
  });
});

describe("partition", () => {
  it("keeps order and covers every item once", () => {
    expect(partition(["a", "b", "c", "d", "e"], [1, 2, 2])).toEqual([["a"], ["b", "c"], ["d", "e"]]);
  });
});

describe("amounts and thresholds", () => {
  it.each([
    ["3", 3],
    ["10%", "10%"],
    [" 12.5% ", "12.5%"],
  ])("parseAmount(%j) = %j", (text, expected) => {
    expect(parseAmount(text)).toEqual(expected);
  });

  it.each(["", "-1", "10 %", "ten", "5%%", "1e3"])("parseAmount(%j) is refused", (text) => {
    expect(() => parseAmount(text)).toThrow(AmountError);
  });

  it.each([
    [0, 10, 0],
    [2, 10, 2],
    ["10%", 10, 1],
    ["10%", 9, 0],
    ["50%", 5, 2],
    ["100%", 7, 7],
  ])("resolveAmount(%j, %i) = %i", (amount, total, expected) => {
    expect(resolveAmount(amount, total)).toBe(expected);
  });

  it.each([
    [0, 0, false],
    [1, 0, true],
    [2, 2, false],
    [3, 2, true],
  ])("%i failed with %i tolerated exceeds: %s (reaching is fine, exceeding stops)", (failed, tolerated, expected) => {
    expect(exceeds(failed, tolerated)).toBe(expected);
  });
});
