import { describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { PLAYBOOK_SCHEMA } from "../../src/config/schemas.js";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText, type KeyPath } from "../../src/config/yamlFile.js";
import { findRole } from "../../src/roles.js";

function check(schema: object, text: string, basePath: KeyPath = [], data?: (d: unknown) => unknown) {
  const problems: ConfigProblem[] = [];
  const file = parseYamlText(text, "v.yaml", problems)!;
  expect(problems).toEqual([]);
  const value = data ? data(file.data) : file.data;
  const ok = validateAgainstSchema(schema, value, file, basePath, problems);
  return { ok, problems };
}

const EPHEMERAL_PORTS = findRole("ephemeral-ports")!.schema;
const TW_REUSE = findRole("tw-reuse")!.schema;

const SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    mode: { type: "string", enum: ["fast", "safe"] },
    exact: { const: 7 },
    name: { type: "string", pattern: "^[a-z]+$" },
    tags: { type: "array", minItems: 1, maxItems: 2, uniqueItems: true, items: { type: "string" } },
    label: { type: "string", minLength: 2, maxLength: 4 },
    ratio: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
    count: { type: "integer", minimum: 1, maximum: 9 },
    nested: {
      type: "object",
      required: ["id"],
      additionalProperties: false,
      properties: { id: { type: "integer" }, other: { type: "integer" } },
    },
  },
} as const;

describe("validateAgainstSchema", () => {
  it("returns true and adds nothing for valid data", () => {
    expect(check(SCHEMA, "mode: fast\ncount: 3\n")).toEqual({ ok: true, problems: [] });
  });

  it.each<[string, string, string, number, number, string, string]>([
    ["enum", "mode: slow\n", "mode", 1, 7, '"slow" is not one of "fast", "safe"', 'use one of "fast", "safe"'],
    ["const", "exact: 8\n", "exact", 1, 8, "8 is not allowed here (only 7)", "set it to 7 or remove it"],
    ["pattern", "name: Bad1\n", "name", 1, 7, '"Bad1" has an invalid form', "it must match ^[a-z]+$"],
    ["minItems", "tags: []\n", "tags", 1, 7, "must NOT have fewer than 1 items", "correct the value"],
    ["maxItems", "tags: [a, b, c]\n", "tags", 1, 7, "must NOT have more than 2 items", "correct the value"],
    [
      "uniqueItems",
      "tags: [a, a]\n",
      "tags",
      1,
      7,
      "must NOT have duplicate items (items ## 1 and 0 are identical)",
      "correct the value",
    ],
    ["minLength", "label: x\n", "label", 1, 8, "must NOT have fewer than 2 characters", "correct the value"],
    ["maxLength", "label: xxxxx\n", "label", 1, 8, "must NOT have more than 4 characters", "correct the value"],
    ["exclusiveMinimum", "ratio: 0\n", "ratio", 1, 8, "0 is out of range (must be > 0)", "use a value greater than 0"],
    ["exclusiveMaximum", "ratio: 1\n", "ratio", 1, 8, "1 is out of range (must be < 1)", "use a value less than 1"],
    ["minimum", "count: 0\n", "count", 1, 8, "0 is out of range (must be >= 1)", "use a value of at least 1"],
    ["maximum", "count: 10\n", "count", 1, 8, "10 is out of range (must be <= 9)", "use a value of at most 9"],
    ["type (number)", "count: 1.5\n", "count", 1, 8, "expected an integer, got a number 1.5", "write an integer"],
    ["type (list)", "name: [a]\n", "name", 1, 7, 'expected a string, got a list ["a"]', "write a string"],
    [
      "type (mapping)",
      "count: {a: 1}\n",
      "count",
      1,
      8,
      'expected an integer, got a mapping {"a":1}',
      "write an integer",
    ],
    ["required", "nested: {other: 1}\n", "nested", 1, 9, 'missing required key "id"', 'add "id:" here'],
    ["nested unknown key", "nested: {id: 1, idd: 2}\n", "nested.idd", 1, 17, 'unknown key "idd"', 'did you mean "id"?'],
    [
      "unknown key without a close match",
      "zzzzzz: 1\n",
      "zzzzzz",
      1,
      1,
      'unknown key "zzzzzz"',
      "remove it; allowed keys here: mode, exact, name, tags, label, ratio, count, nested",
    ],
  ])("%s", (_kw, text, keyPath, line, col, problem, fix) => {
    const { ok, problems } = check(SCHEMA, text);
    expect(ok).toBe(false);
    expect(problems).toEqual([{ file: "v.yaml", line, col, keyPath, severity: "error", problem, fix }]);
  });

  // BUG: typeName(null) and JSON.stringify(null) are both "null" (src/config/validate.ts line 103).
  it("names an empty (null) value once: `got null`, not `got null null`", () => {
    const { problems } = check(SCHEMA, "name:\n");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 1, col: 6, keyPath: "name", fix: "write a string" });
    expect(problems[0]!.problem).toMatch(/^expected a string, got /);
    expect(problems[0]!.problem).not.toContain("null null");
  });

  it("reports a wrong type of the whole document at 1:1 with the schema's fix", () => {
    const { problems } = check(PLAYBOOK_SCHEMA, "hosts: all\n");
    expect(problems).toEqual([
      {
        file: "v.yaml",
        line: 1,
        col: 1,
        keyPath: "",
        severity: "error",
        problem: 'expected a list, got a mapping {"hosts":"all"}',
        fix: "write a list of plays, each with `hosts:` and `roles:`",
      },
    ]);
  });

  it("prefixes key paths and locations with the base path", () => {
    const { problems } = check(
      SCHEMA,
      "wrap:\n  inner:\n    count: 0\n",
      ["wrap", "inner"],
      (d) => (d as { wrap: { inner: unknown } }).wrap.inner,
    );
    expect(problems).toEqual([
      {
        file: "v.yaml",
        line: 3,
        col: 12,
        keyPath: "wrap.inner.count",
        severity: "error",
        problem: "0 is out of range (must be >= 1)",
        fix: "use a value of at least 1",
      },
    ]);
  });

  it("reports every problem of the data, not only the first", () => {
    const { problems } = check(SCHEMA, "mode: slow\ncount: 0\nname: X\nextra: 1\n");
    expect(problems.map((p) => p.keyPath).sort()).toEqual(["count", "extra", "mode", "name"]);
  });

  it("does not repeat the same problem at the same place", () => {
    const { problems } = check(SCHEMA, "count: '22'\n");
    const ids = problems.map((p) => `${p.line}:${p.col}:${p.keyPath}:${p.problem}`);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("accepts null for optional role params", () => {
    expect(check(TW_REUSE, "tcp_fin_timeout: null\ntcp_max_tw_buckets: ~\n").ok).toBe(true);
  });

  it.each([
    ["an integer item", "reserved_ports: [8080]\n", true],
    ["a range string", "reserved_ports: ['9000-9100']\n", true],
    ["a bad string", "reserved_ports: ['nine']\n", false],
    ["a port above 65535", "reserved_ports: [70000]\n", false],
    ["a duplicate", "reserved_ports: [80, 80]\n", false],
  ])("reserved_ports with %s → valid=%s", (_what, text, valid) => {
    expect(check(EPHEMERAL_PORTS, text).ok).toBe(valid);
  });
});
