import { describe, expect, it } from "vitest";
import {
  formatPortList,
  normalizePortRanges,
  parsePortList,
  parsePortRange,
  portsToRanges,
  type PortRange,
} from "../../src/sysctl/portList.js";

const r = (from: number, to: number = from): PortRange => ({ from, to });

describe("parsePortRange", () => {
  it.each<[string, PortRange | null]>([
    ["8080", r(8080)],
    ["1", r(1)],
    ["65535", r(65535)],
    ["9000-9100", r(9000, 9100)],
    ["9000-9000", r(9000)],
    ["1-65535", r(1, 65535)],
    ["00080", r(80)],
    ["0", null],
    ["0-10", null],
    ["65536", null],
    ["100-65536", null],
    ["9100-9000", null],
    ["", null],
    [" 80", null],
    ["80 ", null],
    ["80-", null],
    ["-80", null],
    ["80-90-100", null],
    ["8o", null],
    ["123456", null],
    ["+80", null],
    ["80.0", null],
  ])("%j → %j", (text, expected) => {
    expect(parsePortRange(text)).toEqual(expected);
  });
});

describe("parsePortList", () => {
  it.each<[string, PortRange[] | null]>([
    ["", []],
    ["   ", []],
    ["\n", []],
    ["8080", [r(8080)]],
    ["8080\n", [r(8080)]],
    ["8080,9000-9010", [r(8080), r(9000, 9010)]],
    ["8080, 9000-9010", [r(8080), r(9000, 9010)]],
    ["9000-9010,8080", [r(8080), r(9000, 9010)]],
    ["1-5,3-8", [r(1, 8)]],
    ["1,2,3", [r(1, 3)]],
    ["1-5,6-9", [r(1, 9)]],
    ["1-5,7-9", [r(1, 5), r(7, 9)]],
    ["10-20,12-15", [r(10, 20)]],
    ["8080,8080", [r(8080)]],
    ["8080,", null],
    [",8080", null],
    ["8080,,9000", null],
    ["8080;9000", null],
    ["8080 9000", null],
    ["abc", null],
    ["70000", null],
  ])("%j → %j", (text, expected) => {
    expect(parsePortList(text)).toEqual(expected);
  });
});

describe("normalizePortRanges", () => {
  it.each<[PortRange[], PortRange[]]>([
    [[], []],
    [[r(5)], [r(5)]],
    [
      [r(9), r(1)],
      [r(1), r(9)],
    ],
    [[r(1, 3), r(4, 6)], [r(1, 6)]],
    [
      [r(1, 3), r(5, 6)],
      [r(1, 3), r(5, 6)],
    ],
    [[r(1, 10), r(2, 3)], [r(1, 10)]],
    [
      [r(5, 8), r(1, 10), r(12)],
      [r(1, 10), r(12)],
    ],
    [[r(65535), r(65534)], [r(65534, 65535)]],
  ])("%j → %j", (input, expected) => {
    expect(normalizePortRanges(input)).toEqual(expected);
  });

  it("does not modify its input", () => {
    const input = [r(4, 6), r(1, 3)];
    const copy = structuredClone(input);
    normalizePortRanges(input);
    expect(input).toEqual(copy);
  });
});

describe("formatPortList", () => {
  it.each<[PortRange[], string]>([
    [[], ""],
    [[r(8080)], "8080"],
    [[r(9000, 9010), r(8080)], "8080,9000-9010"],
    [[r(1, 2), r(3)], "1-3"],
    [[r(22), r(80), r(443)], "22,80,443"],
  ])("%j → %j", (input, expected) => {
    expect(formatPortList(input)).toBe(expected);
  });

  it.each(["8080", "8080,9000-9010", "1-3,5,7-65535", ""])("round-trips the kernel form %j", (text) => {
    expect(formatPortList(parsePortList(text)!)).toBe(text);
  });
});

describe("portsToRanges", () => {
  it.each<[number[], PortRange[]]>([
    [[], []],
    [[22], [r(22)]],
    [
      [8081, 8080, 8082, 9000],
      [r(8080, 8082), r(9000)],
    ],
    [
      [22, 22, 80],
      [r(22), r(80)],
    ],
  ])("%j → %j", (ports, expected) => {
    expect(portsToRanges(ports)).toEqual(expected);
  });
});
