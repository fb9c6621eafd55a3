import { describe, expect, it } from "vitest";
import { ConfigErrors, formatProblem, sortProblems, type ConfigProblem } from "../../src/config/errors.js";

function problem(over: Partial<ConfigProblem>): ConfigProblem {
  return {
    file: "inventory/prod.yaml",
    line: 12,
    col: 7,
    keyPath: "all.vars.ansible_port",
    problem: "70000 is out of range",
    fix: "use a port from 1 to 65535",
    severity: "error",
    ...over,
  };
}

describe("formatProblem", () => {
  it.each<[string, Partial<ConfigProblem>, string]>([
    [
      "an error with a key path",
      {},
      "inventory/prod.yaml:12:7 all.vars.ansible_port: 70000 is out of range. Use a port from 1 to 65535.",
    ],
    ["no key path", { keyPath: "" }, "inventory/prod.yaml:12:7: 70000 is out of range. Use a port from 1 to 65535."],
    [
      "a warning",
      { severity: "warning" },
      "inventory/prod.yaml:12:7 all.vars.ansible_port: warning: 70000 is out of range. Use a port from 1 to 65535.",
    ],
    [
      "a warning without a key path",
      { severity: "warning", keyPath: "" },
      "inventory/prod.yaml:12:7: warning: 70000 is out of range. Use a port from 1 to 65535.",
    ],
    [
      "a fix ending in a question mark",
      { fix: 'did you mean "hosts"?' },
      'inventory/prod.yaml:12:7 all.vars.ansible_port: 70000 is out of range. Did you mean "hosts"?',
    ],
    [
      "sentences already ending in a period",
      { problem: "bad.", fix: "fix it." },
      "inventory/prod.yaml:12:7 all.vars.ansible_port: bad. Fix it.",
    ],
    [
      "an exclamation mark",
      { problem: "refused!" },
      "inventory/prod.yaml:12:7 all.vars.ansible_port: refused! Use a port from 1 to 65535.",
    ],
    [
      "surrounding whitespace",
      { problem: "  padded  ", fix: " trimmed \n" },
      "inventory/prod.yaml:12:7 all.vars.ansible_port: padded. Trimmed.",
    ],
    [
      "a sequence key path",
      { keyPath: "[0].roles[1]", file: "site.yaml", line: 3, col: 9 },
      "site.yaml:3:9 [0].roles[1]: 70000 is out of range. Use a port from 1 to 65535.",
    ],
    [
      "a pseudo file",
      { file: "--limit", line: 1, col: 1, keyPath: "" },
      "--limit:1:1: 70000 is out of range. Use a port from 1 to 65535.",
    ],
  ])("formats %s", (_what, over, expected) => {
    expect(formatProblem(problem(over))).toBe(expected);
  });

  it("matches the documented shape `file:line:col key.path: problem. Fix.` (the fix starts with a capital)", () => {
    expect(formatProblem(problem({}))).toMatch(/^[^:]+:\d+:\d+ [\w.[\]]+: [^.]+\. [^.]+\.$/);
  });
});

describe("ConfigErrors", () => {
  it("carries every problem and prints one per line", () => {
    const problems = [problem({}), problem({ line: 20, keyPath: "", severity: "warning" })];
    const err = new ConfigErrors(problems);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("ConfigErrors");
    expect(err.problems).toBe(problems);
    expect(err.message.split("\n")).toEqual(problems.map(formatProblem));
  });
});

describe("sortProblems", () => {
  it("sorts by file, line, column, then key path, without changing the input", () => {
    const input = [
      problem({ file: "b.yaml", line: 1, col: 1, keyPath: "z" }),
      problem({ file: "a.yaml", line: 10, col: 1, keyPath: "a" }),
      problem({ file: "a.yaml", line: 2, col: 9, keyPath: "a" }),
      problem({ file: "a.yaml", line: 2, col: 3, keyPath: "b" }),
      problem({ file: "a.yaml", line: 2, col: 3, keyPath: "a" }),
    ];
    const copy = [...input];
    const sorted = sortProblems(input);
    expect(input).toEqual(copy);
    expect(sorted.map((p) => `${p.file}:${p.line}:${p.col}:${p.keyPath}`)).toEqual([
      "a.yaml:2:3:a",
      "a.yaml:2:3:b",
      "a.yaml:2:9:a",
      "a.yaml:10:1:a",
      "b.yaml:1:1:z",
    ]);
  });
});
