import { relative } from "node:path";
import type { AnyRole } from "./role.js";
import { describeConnection, type ParamSource, type ResolvedHost } from "./resolve.js";
import { commentLines } from "./render.js";

/** Pure: each role's params with their default and their why — the schema is the only source. */
export function explainRoles(roles: readonly AnyRole[]): string {
  const out: string[] = [];
  for (const role of roles) {
    out.push(`${role.name} — ${role.summary}`);
    for (const [name, schema] of Object.entries(role.schema.properties)) {
      out.push(`  ${name} = ${formatValue(schema.default)}  (default)`);
      out.push(indentWhy(schema.description, "      "));
    }
    out.push("");
  }
  return `${out.join("\n")}\n`;
}

/** Pure: for each host, every param's value and where it came from (default, group, host, playbook). */
export function explainHosts(hosts: readonly ResolvedHost[], roleFilter: string | undefined, cwd: string): string {
  const out: string[] = [];
  for (const host of hosts) {
    out.push(`${host.name}  (${describeConnection(host.connection)}${host.become ? ", become" : ""})`);
    for (const r of host.roles) {
      if (roleFilter && r.role.name !== roleFilter) continue;
      out.push(`  ${r.role.name}`);
      const width = Math.max(...Object.keys(r.params).map((k) => k.length));
      for (const [name, value] of Object.entries(r.params)) {
        out.push(
          `    ${name.padEnd(width)} = ${formatValue(value).padEnd(18)} ${describeSource(r.sources[name]!, cwd)}`,
        );
      }
    }
    out.push("");
  }
  if (hosts.length > 0) out.push(PRECEDENCE_NOTE, "");
  return `${out.join("\n")}\n`;
}

/** Where provision's precedence is Ansible's, and the one place it deliberately is not. */
export const PRECEDENCE_NOTE = [
  "Precedence is Ansible's (lowest first: all's inventory vars, other groups' by depth, ansible_group_priority and name,",
  "group_vars/all, other group_vars/, the host's inventory vars, host_vars/; each beside the inventory, then the playbook),",
  "then playbook params. One difference: a role's block is merged param by param across these layers (Ansible would",
  "replace the whole mapping), so the source shown is per param.",
].join("\n");

export function describeSource(s: ParamSource, cwd: string): string {
  const where = `${relative(cwd, s.file) || s.file}:${s.line}:${s.col}`;
  switch (s.kind) {
    case "default":
      return "default";
    case "group":
      return `group ${s.name}  ${where}`;
    case "host":
      return `host ${s.name}  ${where}`;
    case "playbook":
      return `playbook  ${where}`;
  }
}

function formatValue(v: unknown): string {
  return v === null ? "null (leave the host's value)" : JSON.stringify(v);
}

function indentWhy(text: string, indent: string): string {
  return commentLines(text)
    .split("\n")
    .map((l) => `${indent}${l.replace(/^# ?/, "")}`)
    .join("\n");
}
