import type { AnyRole, ParamSchema } from "./role.js";
import { USED_VARS } from "./inventory/usedVars.js";
import { roleVarName } from "./roles.js";

/** Pure: the params reference (docs/roles.md), generated from the schemas so it can't drift from them. */
export function renderReference(roles: readonly AnyRole[]): string {
  const out = [
    "# Role reference",
    "",
    "Generated from the role schemas by `npm run docs`; a test fails when this file is stale.",
    "Set params in inventory vars under the role's snake_case name, or as `params:` in the playbook.",
    "Precedence, lowest first: default < group vars < host vars < playbook params.",
    "",
  ];
  for (const role of roles) {
    out.push(`## ${role.name}`, "", role.summary, "", `Inventory vars key: \`${roleVarName(role.name)}:\``, "");
    out.push("| param | type | default | why |", "|---|---|---|---|");
    for (const [name, schema] of Object.entries(role.schema.properties)) {
      out.push(
        `| \`${name}\` | ${typeOf(schema)} | \`${JSON.stringify(schema.default)}\` | ${cell(schema.description)} |`,
      );
    }
    out.push("");
  }
  out.push(
    "## Host variables",
    "",
    "The vars provision reads, with Ansible's names; every other var in an inventory is left alone. Where a var has two names and both are set, the second one wins, as in Ansible.",
    "",
    "| var | type | meaning |",
    "|---|---|---|",
  );
  for (const spec of Object.values(USED_VARS)) {
    out.push(`| ${spec.names.map((n) => `\`${n}\``).join(", ")} | ${spec.type} | ${cell(spec.description)} |`);
  }
  out.push("");
  return out.join("\n");
}

function typeOf(schema: ParamSchema): string {
  const type = Array.isArray(schema.type) ? (schema.type as string[]).join(" \\| ") : String(schema.type ?? "any");
  const parts = [type];
  if (Array.isArray(schema.enum))
    parts.push(`one of ${(schema.enum as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`);
  if (schema.minimum !== undefined || schema.maximum !== undefined)
    parts.push(`${schema.minimum ?? "…"}–${schema.maximum ?? "…"}`);
  return parts.join(", ");
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}
