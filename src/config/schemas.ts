import { ROLES, roleVarName } from "../roles.js";

/** Connection and privilege variables we read, with Ansible's names so existing inventories work unchanged. */
export const CONNECTION_VARS = {
  ansible_host: { type: "string", minLength: 1, maxLength: 253, pattern: "^[A-Za-z0-9.:_-]+$", description: "Address to connect to (default: the inventory name)", fix: "write a host name or IP address" },
  ansible_port: { type: "integer", minimum: 1, maximum: 65535, description: "SSH port (default 22)", fix: "use a port from 1 to 65535" },
  ansible_user: { type: "string", pattern: "^[a-z_][a-z0-9_.-]{0,31}$", description: "Login user (default: root)", fix: "write a Unix user name such as deploy" },
  ansible_ssh_private_key_file: {
    // A path with a newline or NUL would only fail at connect time, host by host, and forge lines where it is printed.
    type: "string", minLength: 1, maxLength: 4096, pattern: "^[^\\u0000-\\u001f\\u007f]*$",
    description: "Private key file (default: ssh-agent via SSH_AUTH_SOCK, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)",
    fix: "write the path of a private key file (no control characters such as newlines, at most 4096 characters)",
  },
  ansible_become: { type: "boolean", description: "Run privileged steps with sudo (overrides the play's become)", fix: "write true or false" },
  ansible_memtotal_mb: { type: "integer", minimum: 64, description: "The host's memory in MiB, as Ansible's fact of that name; lets `provision lint` check memory-bound settings without connecting", fix: "write the host's MemTotal in MiB, e.g. 16384" },
  listen_ports: {
    type: "array", uniqueItems: true, items: { type: "integer", minimum: 1, maximum: 65535 },
    description: "Ports this host's services listen on (even when not running yet); `provision lint` checks them against the ephemeral port range",
    fix: "write a list of port numbers, e.g. [8080, 9090]",
  },
} as const;

function varsSchema(): object {
  const properties: Record<string, object> = { ...CONNECTION_VARS };
  for (const role of ROLES) properties[roleVarName(role.name)] = role.schema;
  return { type: ["object", "null"], additionalProperties: false, properties };
}

/** A vars mapping: inline `vars:`, a host's mapping, or a group_vars/ or host_vars/ file. */
export const VARS_SCHEMA = varsSchema();

/** Ansible's YAML inventory: groups with hosts, vars and children, nested to any depth. */
export const INVENTORY_SCHEMA = {
  $id: "inventory",
  type: "object",
  minProperties: 1,
  additionalProperties: { $ref: "#/$defs/group" },
  fix: "start the inventory with `all:` and list hosts under `hosts:` or groups under `children:`",
  $defs: {
    vars: VARS_SCHEMA,
    group: {
      type: ["object", "null"],
      additionalProperties: false,
      properties: {
        hosts: { type: ["object", "null"], additionalProperties: { $ref: "#/$defs/vars" } },
        vars: { $ref: "#/$defs/vars" },
        children: { type: ["object", "null"], additionalProperties: { $ref: "#/$defs/group" } },
      },
    },
  },
} as const;

const AMOUNT = {
  type: ["integer", "string"], minimum: 0, pattern: "^(\\d+|\\d+(\\.\\d+)?%)$",
  fix: "write a count of hosts (3) or a percentage (\"10%\")",
};

/** The play's `rollout:` — staged batches like Ansible's `serial`, with failure budgets. */
export const ROLLOUT_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    batches: {
      type: "array", minItems: 1,
      items: { ...AMOUNT, minimum: 1, pattern: "^([1-9]\\d*|\\d+(\\.\\d+)?%)$", fix: "write a batch size of at least 1 host (1) or a percentage (\"10%\")" },
      fix: "write a list of batch sizes, e.g. [1, \"10%\", \"50%\", \"100%\"]; the last one repeats",
    },
    max_fail_per_batch: AMOUNT,
    max_fail_total: AMOUNT,
    pause: { type: ["integer", "string"], minimum: 0, maximum: 86400, pattern: "^prompt$", fix: "write seconds (30) or \"prompt\" to wait for Enter" },
    allow_plan_drift: { type: "boolean", fix: "write true or false" },
  },
} as const;

export const PLAYBOOK_SCHEMA = {
  $id: "playbook",
  type: "array",
  minItems: 1,
  fix: "write a list of plays, each with `hosts:` and `roles:`",
  items: {
    type: "object",
    additionalProperties: false,
    required: ["hosts", "roles"],
    properties: {
      name: { type: "string" },
      hosts: { type: "string", minLength: 1, fix: "write a host pattern such as all, web, or web:&prod" },
      become: { type: "boolean", fix: "write true or false" },
      rollout: ROLLOUT_SCHEMA,
      roles: {
        type: "array",
        minItems: 1,
        items: {
          type: ["string", "object"],
          fix: "write a role name, or a mapping with `role:` and `params:`",
          additionalProperties: false,
          required: ["role"],
          properties: {
            role: { type: "string" },
            params: { type: ["object", "null"] },
          },
        },
      },
    },
  },
} as const;
