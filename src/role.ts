import type { AnyProbe, Probe } from "./facts/probe.js";

/** What a role asks to read from a host before planning. Gathered for all roles in one exec. */
export type FactRequest =
  | { kind: "sysctl"; key: string }
  | { kind: "file"; path: string }
  | { kind: "listening-ports" }
  /** The probe itself; `arg` must already be validated by the role's schema. */
  | { kind: "probe"; probe: AnyProbe; arg?: string };

/** A probe's answer: its typed value, or why it could not be read. */
export type ProbeResult<T = unknown> = { ok: true; value: T } | { ok: false; error: string };

export interface BoundPorts {
  tcp: number[];
  /** UDP clients that sendto() without connect() also show here, on an ephemeral port. */
  udp: number[];
}

/** What was read. `null` means the key or file does not exist on the host. */
export interface Facts {
  sysctl: Record<string, string | null>;
  files: Record<string, string | null>;
  /** sha256 of each file's raw bytes; "absent" when it does not exist. */
  fileSha256?: Record<string, string>;
  /** Local ports of TCP listeners and of bound, unconnected UDP sockets; each sorted and unique. */
  listeningPorts: BoundPorts | null;
  /** Keyed by `probeKey(name, arg)`. */
  probes?: Record<string, ProbeResult>;
}

export function probeKey(probe: string, arg?: string): string {
  return arg === undefined ? probe : `${probe}:${arg}`;
}

export function probeRequest(probe: AnyProbe, arg?: string): FactRequest {
  return arg === undefined ? { kind: "probe", probe } : { kind: "probe", probe, arg };
}

/** The typed answer of a probe the role asked for; undefined when it was not gathered. */
export function probeResult<T>(facts: Facts, probe: Probe<T>, arg?: string): ProbeResult<T> | undefined {
  return facts.probes?.[probeKey(probe.name, arg)] as ProbeResult<T> | undefined;
}

/**
 * The closed set of things `run` can do to a host. Plain data: `plan --json` prints exactly these,
 * and apply executes exactly these.
 */
export type Change =
  | {
      kind: "file";
      path: string;
      /** Current content, or null when the file does not exist. */
      before: string | null;
      /** sha256 of the current raw bytes (exact even when they are not UTF-8); apply refuses if it changed. */
      beforeSha256?: string;
      after: string;
      mode: string;
      owner: string;
      group: string;
      description: string;
    }
  | {
      kind: "sysctl";
      key: string;
      before: string | null;
      after: string;
      description: string;
    }
  | {
      /** A command run as given (each argv word POSIX-quoted); a role plans it only when needed. */
      kind: "command";
      argv: string[];
      description: string;
      /** The inverse command, when there is one: kept in the snapshot for `rollback` and the lockout guard. */
      undo?: string[];
    };

/** What verify reads back, with the expected value and what a mismatch means. */
export type Check =
  | { kind: "sysctl"; key: string; expected: string; message: string }
  /** `expected: null`: the file must not exist. */
  | { kind: "file"; path: string; expected: string | null; message: string }
  | {
      kind: "probe";
      probe: string;
      arg?: string;
      /** Where the value is in the probe's typed answer: object keys (and record keys such as a path). */
      field: string[];
      expected: string;
      /** equal: by words; at-least/at-most: as integers ("unlimited" is infinite); includes/excludes: membership in a list. */
      compare: "equal" | "at-least" | "at-most" | "includes" | "excludes";
      /** Read through a brand-new SSH login (through PAM), not the connection that applied the change. */
      freshLogin?: boolean;
      /** How the check is named in reports, e.g. "fresh login: soft nofile". */
      label: string;
      message: string;
    };

export type ProbeCheck = Extract<Check, { kind: "probe" }>;

/** A check of one field of a probe's typed answer; its first key is checked against the probe's type. */
export function probeCheck<T>(
  probe: Probe<T>,
  check: Omit<ProbeCheck, "kind" | "probe" | "field"> & { field: [keyof T & string, ...string[]] },
): ProbeCheck {
  return { ...check, kind: "probe", probe: probe.name, field: [...check.field] };
}

export interface RolePlan {
  changes: Change[];
  checks: Check[];
  notes: string[];
  /**
   * Why this role must not run on this host, each with its fix. A role never throws to refuse:
   * planning collects every refusal of every role of a host, so one `plan` shows them all.
   */
  refusals: string[];
}

/** The plan of a role that refuses: nothing to change or check, only the reasons. */
export function refused(refusals: string[], notes: string[] = []): RolePlan {
  return { changes: [], checks: [], notes, refusals };
}

export interface PlanContext {
  hostName: string;
  /** The address the SSH session is connected to; roles must never remove or change it. */
  sshAddress: string;
  /** "plan" for plan/run; "verify" when only checking what was applied (no new discoveries). */
  purpose: "plan" | "verify";
  /** Renders `templates/<role>/<name>` with the given data plus `why` (each param's reason), pure and cached. */
  render(template: string, data?: Record<string, unknown>): string;
  /** The schema description of each param: the single home of each value's "why". */
  why: Record<string, string>;
}

/** What the inventory tells about a host without connecting to it (for `provision lint`). */
export interface InventoryHints {
  /** `listen_ports` plus a non-22 `ansible_port`: ports a service on the host listens on. */
  listenPorts: number[];
  /** Ansible's `ansible_memtotal_mb`, when the inventory sets it. */
  memTotalMb: number | null;
}

/** A problem with a role's merged params that the schema alone cannot express. */
export interface ParamProblem {
  /** The param the problem is about; errors are located where that param's value was set. */
  param: string;
  problem: string;
  fix: string;
  severity: "error" | "warning";
}

/** One param's JSON Schema. `default` and `description` (the why) are mandatory: this is their only home. */
export interface ParamSchema {
  description: string;
  default: unknown;
  /** How to correct an invalid value; shown after the problem. */
  fix?: string;
  [keyword: string]: unknown;
}

export interface RoleSchema {
  type: "object";
  additionalProperties: false;
  properties: Record<string, ParamSchema>;
}

export interface RoleDefinition<P> {
  name: string;
  summary: string;
  /** JSON Schema of the params (ajv): the only home of defaults and of the "why" (description) text. */
  schema: RoleSchema;
  /** Rules across params (e.g. start < end), run on the merged params. Pure. */
  validate?: (params: P) => ParamProblem[];
  /**
   * The role changes what a login gets (limits, addresses): after applying it, a fresh SSH login
   * must succeed before the original connection closes, or the host's changes are reverted.
   */
  touchesLogin?: boolean;
  /** `provision lint`: rules that need what the inventory says about the host (no connection). Pure. */
  lint?: (params: P, hints: InventoryHints) => ParamProblem[];
  facts: (params: P) => FactRequest[];
  plan: (params: P, facts: Facts, ctx: PlanContext) => RolePlan;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRole = RoleDefinition<any>;

export function defineRole<P>(role: RoleDefinition<P>): RoleDefinition<P> {
  return role;
}
