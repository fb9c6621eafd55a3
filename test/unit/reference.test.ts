import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../src/installRoot.js";
import { renderReference } from "../../src/reference.js";
import { ROLES } from "../../src/roles.js";

describe("docs/roles.md", () => {
  it("is what the schemas generate (run `npm run docs` after changing a schema)", () => {
    expect(readFileSync(join(PROJECT_ROOT, "docs", "roles.md"), "utf8")).toBe(renderReference(ROLES));
  });

  it.each(ROLES.map((r) => [r.name, r] as const))("lists every param of %s with its default and why", (_name, role) => {
    const doc = renderReference([role]);
    for (const [param, schema] of Object.entries(role.schema.properties)) {
      expect(doc).toContain(`| \`${param}\` |`);
      expect(doc).toContain(`\`${JSON.stringify(schema.default)}\``);
      expect(schema.description.length).toBeGreaterThan(40);
    }
  });
});
