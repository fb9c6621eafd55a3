import { describe, expect, it } from "vitest";
import {
  effectiveHardNofile,
  inFlightPerProcess,
  MAX_PROCESSES_PER_SIDE,
  socketsPerProcess,
  spread,
} from "../../src/capacity/spread.js";

describe("spread: the bound over processes that each stay under their hard nofile", () => {
  it.each<[string, number, number, { processes: number; perProcess: number; targets: number[]; capped: boolean }]>([
    [
      "this machine: 120,000 over 8 × 15,000 (hard 20,000)",
      120_000,
      20_000,
      { processes: 8, perProcess: 15_000, targets: Array(8).fill(15_000), capped: false },
    ],
    [
      "a bound one process holds",
      10_000,
      20_000,
      { processes: 1, perProcess: 15_000, targets: [10_000], capped: false },
    ],
    [
      "an uneven split keeps the sum",
      30_001,
      20_000,
      { processes: 3, perProcess: 15_000, targets: [10_001, 10_000, 10_000], capped: false },
    ],
    [
      "a large hard limit: fewer, bigger processes",
      120_000,
      1_048_576,
      { processes: 2, perProcess: 60_000, targets: [60_000, 60_000], capped: false },
    ],
    [
      "a low hard limit: capped at the process bound",
      120_000,
      4096,
      { processes: MAX_PROCESSES_PER_SIDE, perProcess: 3072, targets: Array(8).fill(15_000), capped: true },
    ],
    [
      "beyond 8 × 15,000 here: capped",
      200_000,
      20_000,
      { processes: 8, perProcess: 15_000, targets: Array(8).fill(25_000), capped: true },
    ],
    ["one connection", 1, 20_000, { processes: 1, perProcess: 15_000, targets: [1], capped: false }],
  ])("%s", (_, bound, hard, expected) => {
    const s = spread(bound, hard);
    expect(s).toEqual({ ...expected, hardNofile: hard });
    expect(s.targets.reduce((a, b) => a + b, 0)).toBe(bound);
  });

  it.each<[number, number]>([
    [20_000, 15_000],
    [1024, 768],
    [1, 1],
    [10_000_000, 60_000],
  ])("socketsPerProcess(%i) = %i", (hard, expected) => {
    expect(socketsPerProcess(hard)).toBe(expected);
  });

  it.each<[number, number]>([
    [1, 512],
    [8, 64],
    [64, 16],
  ])("inFlightPerProcess(%i) = %i", (processes, expected) => {
    expect(inFlightPerProcess(processes)).toBe(expected);
  });
});

describe("effectiveHardNofile", () => {
  it.each<[string, number | null, number | null]>([
    ["20000", 1048576, 20000],
    ["unlimited", 1048576, 1048576],
    ["unlimited", null, null],
    ["4000000", 1048576, 1048576],
    ["0", 1048576, null],
    ["", 1048576, null],
    ["12x", 1048576, null],
  ])("ulimit -Hn %j with nr_open %j → %j", (text, nrOpen, expected) => {
    expect(effectiveHardNofile(text, nrOpen)).toBe(expected);
  });
});
