import { describe, expect, it } from "vitest";
import type { PlannedCheck } from "../../src/plan.js";
import type { Facts } from "../../src/role.js";
import { evaluateChecks, factRequestsForChecks } from "../../src/verify.js";

const sysctlCheck = (key: string, expected: string): PlannedCheck => ({
  kind: "sysctl",
  key,
  expected,
  message: `${key} differs`,
  role: "r",
});
const fileCheck = (path: string, expected: string): PlannedCheck => ({
  kind: "file",
  path,
  expected,
  message: `${path} differs`,
  role: "r",
});

describe("evaluateChecks", () => {
  it.each<[string, PlannedCheck, Facts, string | null, boolean]>([
    [
      "a tab-separated read-back equals a space-separated value",
      sysctlCheck("net.ipv4.ip_local_port_range", "1024 65535"),
      { sysctl: { "net.ipv4.ip_local_port_range": "1024\t65535" }, files: {}, listeningPorts: null },
      "1024\t65535",
      true,
    ],
    [
      "extra whitespace is ignored",
      sysctlCheck("k.a", "1024 65535"),
      { sysctl: { "k.a": " 1024  65535\n" }, files: {}, listeningPorts: null },
      " 1024  65535\n",
      true,
    ],
    [
      "a different value",
      sysctlCheck("k.a", "1"),
      { sysctl: { "k.a": "2" }, files: {}, listeningPorts: null },
      "2",
      false,
    ],
    [
      "a different range",
      sysctlCheck("k.a", "1024 65535"),
      { sysctl: { "k.a": "32768\t60999" }, files: {}, listeningPorts: null },
      "32768\t60999",
      false,
    ],
    [
      "an absent key",
      sysctlCheck("k.a", "1"),
      { sysctl: { "k.a": null }, files: {}, listeningPorts: null },
      null,
      false,
    ],
    ["a key that was not read", sysctlCheck("k.a", "1"), { sysctl: {}, files: {}, listeningPorts: null }, null, false],
    [
      "an identical file",
      fileCheck("/etc/f", "a\tb\n"),
      { sysctl: {}, files: { "/etc/f": "a\tb\n" }, listeningPorts: null },
      "a\tb\n",
      true,
    ],
    [
      "a file that differs only in whitespace",
      fileCheck("/etc/f", "a\tb\n"),
      { sysctl: {}, files: { "/etc/f": "a b\n" }, listeningPorts: null },
      "a b\n",
      false,
    ],
    [
      "a file without its final newline",
      fileCheck("/etc/f", "a\n"),
      { sysctl: {}, files: { "/etc/f": "a" }, listeningPorts: null },
      "a",
      false,
    ],
    [
      "an absent file",
      fileCheck("/etc/f", "a\n"),
      { sysctl: {}, files: { "/etc/f": null }, listeningPorts: null },
      null,
      false,
    ],
    [
      "an empty expected file that is absent",
      fileCheck("/etc/f", ""),
      { sysctl: {}, files: {}, listeningPorts: null },
      null,
      false,
    ],
  ])("%s", (_what, check, facts, actual, ok) => {
    expect(evaluateChecks([check], facts)).toEqual([{ check, actual, ok }]);
  });

  it("keeps the order of the checks", () => {
    const checks = [sysctlCheck("a.b", "1"), fileCheck("/f", "x"), sysctlCheck("c.d", "2")];
    const results = evaluateChecks(checks, {
      sysctl: { "a.b": "1", "c.d": "3" },
      files: { "/f": "x" },
      listeningPorts: null,
    });
    expect(results.map((r) => [r.check, r.ok])).toEqual([
      [checks[0], true],
      [checks[1], true],
      [checks[2], false],
    ]);
  });
});

describe("factRequestsForChecks", () => {
  it("asks for exactly what the checks read", () => {
    expect(factRequestsForChecks([sysctlCheck("a.b", "1"), fileCheck("/f", "x")], new Map())).toEqual([
      { kind: "sysctl", key: "a.b" },
      { kind: "file", path: "/f" },
    ]);
  });
});
