import { describe, expect, it } from "vitest";
import { mapLimit } from "../../src/mapLimit.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("mapLimit", () => {
  it.each([
    [10, 1],
    [10, 3],
    [10, 10],
    [5, 50],
    [1, 4],
  ])("%i items, limit %i: never more than the limit at once, results in order", async (count, limit) => {
    const items = Array.from({ length: count }, (_, i) => i);
    let running = 0;
    let peak = 0;
    const seenIndexes: number[] = [];
    const results = await mapLimit(items, limit, async (item, index) => {
      seenIndexes.push(index);
      running++;
      peak = Math.max(peak, running);
      // later items finish first, so order can only be kept on purpose
      await sleep((count - item) * 2);
      running--;
      return `r${item}`;
    });
    expect(results).toEqual(items.map((i) => `r${i}`));
    expect(peak).toBe(Math.min(limit, count));
    expect(seenIndexes.sort((a, b) => a - b)).toEqual(items);
  });

  it("returns an empty list for no items without calling fn", async () => {
    let calls = 0;
    expect(await mapLimit([], 4, async () => ++calls)).toEqual([]);
    expect(calls).toBe(0);
  });

  it.each([0, -3])("runs one at a time when the limit is %i", async (limit) => {
    let running = 0;
    let peak = 0;
    const results = await mapLimit([1, 2, 3], limit, async (x) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(1);
      running--;
      return x * 2;
    });
    expect(results).toEqual([2, 4, 6]);
    expect(peak).toBe(1);
  });

  it("starts a new item as soon as one finishes", async () => {
    // Item 0 is held until items 1, 2 and 3 have all finished: they can only get through if each
    // one starts as soon as the one before it frees the second slot. No timer decides the order,
    // so a starved event loop can't reorder it; a pool that waited for whole batches would hang
    // here, and the bound turns that into a failure.
    const started: number[] = [];
    const finished: number[] = [];
    let othersDone!: () => void;
    const allOthersDone = new Promise<void>((resolve) => (othersDone = resolve));
    const hung = new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`items 1-3 never all ran beside item 0; finished: ${finished.join(",")}`)),
        10_000,
      ).unref(),
    );
    await mapLimit([0, 1, 2, 3], 2, async (item) => {
      started.push(item);
      if (item === 0) await Promise.race([allOthersDone, hung]);
      else await Promise.resolve();
      finished.push(item);
      if (finished.length === 3 && !finished.includes(0)) othersDone();
    });
    expect(finished).toEqual([1, 2, 3, 0]);
    expect(started).toEqual([0, 1, 2, 3]);
  });

  it("rejects when fn rejects", async () => {
    await expect(
      mapLimit([1, 2, 3], 2, async (x) => {
        if (x === 2) throw new Error("boom");
        return x;
      }),
    ).rejects.toThrow("boom");
  });
});
