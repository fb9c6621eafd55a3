const AMOUNT = {
  type: ["integer", "string"],
  minimum: 0,
  pattern: "^(\\d+|\\d+(\\.\\d+)?%)$",
  fix: 'write a count of hosts (3) or a percentage ("10%")',
};

/** The play's `rollout:` — staged batches like Ansible's `serial`, with failure budgets. */
export const ROLLOUT_SCHEMA = {
  type: "object",
  additionalProperties: false,
  properties: {
    batches: {
      type: "array",
      minItems: 1,
      items: {
        ...AMOUNT,
        minimum: 1,
        pattern: "^([1-9]\\d*|\\d+(\\.\\d+)?%)$",
        fix: 'write a batch size of at least 1 host (1) or a percentage ("10%")',
      },
      fix: 'write a list of batch sizes, e.g. [1, "10%", "50%", "100%"]; the last one repeats',
    },
    max_fail_per_batch: AMOUNT,
    max_fail_total: AMOUNT,
    pause: {
      type: ["integer", "string"],
      minimum: 0,
      maximum: 86400,
      pattern: "^prompt$",
      fix: 'write seconds (30) or "prompt" to wait for Enter',
    },
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
