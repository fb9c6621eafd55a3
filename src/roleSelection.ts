import { closest } from "./config/suggest.js";
import type { ResolvedHost } from "./resolve.js";

/** --tags / --skip-tags, as Ansible's: which of the playbook's roles run (by role name; a role is its own tag). */
export interface RoleSelection {
  tags: string[];
  skipTags: string[];
}

/**
 * Each host keeps the roles --tags names (all when empty) minus those --skip-tags names; the
 * playbook's order stays. Every unknown name is a problem, with the closest known one.
 */
export function selectRoles(
  hosts: ResolvedHost[],
  known: readonly string[],
  selection: RoleSelection,
): { hosts: ResolvedHost[]; problems: string[] } {
  const problems = [
    ...unknownNames("--tags", selection.tags, known),
    ...unknownNames("--skip-tags", selection.skipTags, known),
  ];
  if (problems.length > 0) return { hosts, problems };
  const keeps = (role: string) =>
    (selection.tags.length === 0 || selection.tags.includes(role)) && !selection.skipTags.includes(role);
  return { hosts: hosts.map((h) => ({ ...h, roles: h.roles.filter((r) => keeps(r.role.name)) })), problems };
}

/** `a,b` and repeated flags both give lists, as in Ansible. */
export function splitTags(values: readonly string[]): string[] {
  return values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

function unknownNames(flag: string, names: readonly string[], known: readonly string[]): string[] {
  return names
    .filter((name) => !known.includes(name))
    .map((name) => {
      const guess = closest(name, known);
      return `${flag} ${name}: no such role.${guess ? ` Did you mean ${guess}?` : ""} Roles: ${known.join(", ")}`;
    });
}
