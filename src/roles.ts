import type { AnyRole } from "./role.js";
import ephemeralPorts from "../roles/ephemeral-ports.js";
import twReuse from "../roles/tw-reuse.js";
import synBacklog from "../roles/syn-backlog.js";
import keepalive from "../roles/keepalive.js";
import conntrack from "../roles/conntrack.js";
import secondarySourceIps from "../roles/secondary-source-ips.js";
import fdLimits from "../roles/fd-limits.js";

/** Every role, in the order a playbook that lists them all should apply them. A new role is one line here. */
export const ROLES: readonly AnyRole[] = [
  fdLimits,
  ephemeralPorts,
  twReuse,
  synBacklog,
  keepalive,
  conntrack,
  secondarySourceIps,
];

export function findRole(name: string): AnyRole | undefined {
  return ROLES.find((r) => r.name === name);
}

/** Roles' params live in inventory vars under the role's name in snake_case (`ephemeral_ports:`), like Ansible vars. */
export function roleVarName(roleName: string): string {
  return roleName.replace(/-/g, "_");
}
