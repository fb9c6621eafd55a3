import { describe, expect, it } from "vitest";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import { ROLES } from "../../src/roles.js";
import { paramsOf } from "./_roles.js";

/** The schema is the only home of each param's default and its why: every role, every param. */
describe.each(ROLES.map((role) => [role.name, role] as const))("%s schema", (_name, role) => {
  it.each(Object.entries(role.schema.properties))(
    "%s has a default, a why (with numbers, for a number), and a fix (unless a boolean)",
    (key, s) => {
      expect("default" in s, key).toBe(true);
      expect(s.description.length, key).toBeGreaterThan(80);
      if ([s.type].flat().some((t) => t === "integer" || t === "number")) expect(s.description, key).toMatch(/\d/);
      // A boolean can only be mistyped, and the schema error says so; other params say how to fix a bad value.
      if (s.type !== "boolean") expect(typeof s.fix, key).toBe("string");
    },
  );

  it("accepts its own defaults", () => {
    const problems: never[] = [];
    const file = parseYamlText("{}\n", "defaults.yaml", problems)!;
    expect(validateAgainstSchema(role.schema, paramsOf(role), file, [], problems)).toBe(true);
    expect(problems).toEqual([]);
  });

  it("refuses a key it does not know", () => {
    expect(
      validateAgainstSchema(
        role.schema,
        { ...paramsOf(role), no_such_param: 1 },
        parseYamlText("{}\n", "d.yaml", [])!,
        [],
        [],
      ),
    ).toBe(false);
  });
});
