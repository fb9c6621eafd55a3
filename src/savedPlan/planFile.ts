import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { writeAtomically } from "../writeAtomically.js";
import type { HostPlan } from "../plan.js";
import type { HostReport } from "../report.js";
import type { Facts } from "../role.js";
import type { ResolvedHost } from "../resolve.js";
import { configDigest, hostsDigest, playbookDigest } from "./compare.js";

/**
 * A plan saved by `provision plan -o FILE`, for `provision run --plan FILE` to apply as reviewed
 * and `provision show FILE` to print. Holds no secret: host names, the facts read from each host
 * (sysctl values, the managed files, probe results), the changes, and digests of the
 * configuration; never connection settings, passwords or keys.
 */
export interface SavedPlan {
  format: typeof PLAN_FORMAT;
  formatVersion: 1;
  /** The provision version that made it: another version may plan differently, so it is refused. */
  provision: string;
  createdAt: string;
  /** As given on the command line, so `run --plan` without -i reads the same sources. */
  inventory: string[];
  playbook: string;
  limit: string | null;
  tags: string[];
  skipTags: string[];
  digests: {
    /** sha256 of the playbook file's bytes. */
    playbook: string;
    /** Over every planned host's configDigest: which hosts, with which roles and params. */
    hosts: string;
  };
  /** Each distinct plan once (hosts of a fleet mostly share theirs), by planKey. */
  plans: Record<string, PlanBody>;
  hosts: SavedHost[];
}

/** A host's plan without its name: what hosts with identical plans share. */
export type PlanBody = Omit<HostPlan, "host">;

export interface SavedHost {
  host: string;
  status: "changed" | "unchanged";
  /** sha256 of what provision resolved for this host: its roles, their params, become, and its address. */
  configDigest: string;
  /** What was read from the host: the plan is a pure function of these and the params. */
  facts: Facts;
  /** A key of SavedPlan.plans. */
  plan: string;
}

export const PLAN_FORMAT = "provision-plan";
/** How a plan names the playbook bundled with provision: its path differs between installs. */
export const BUNDLED_PLAYBOOK = "(bundled)";

export interface PlanSelection {
  inventory: string[];
  /** A path, or BUNDLED_PLAYBOOK. */
  playbook: string;
  limit: string | undefined;
  tags: string[];
  skipTags: string[];
}

/** Only for plans without errors: a host that could not be planned has nothing to review. */
export function savedPlanFor(
  reports: HostReport[],
  hosts: ResolvedHost[],
  factsOf: (host: string) => Facts | undefined,
  selection: PlanSelection,
  made: { provision: string; at: Date; playbookBytes: Buffer },
): SavedPlan {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const plans: Record<string, PlanBody> = {};
  const saved = reports.map((r): SavedHost => {
    const facts = factsOf(r.host);
    const host = byName.get(r.host);
    if (!r.plan || !facts || !host || (r.status !== "changed" && r.status !== "unchanged"))
      throw new Error(`${r.host} has no plan to save (${r.status})`);
    const { host: _name, ...body } = r.plan;
    const key = planKey(body);
    plans[key] = body;
    return { host: r.host, status: r.status, configDigest: configDigest(host), facts, plan: key };
  });
  return {
    format: PLAN_FORMAT,
    formatVersion: 1,
    provision: made.provision,
    createdAt: made.at.toISOString(),
    inventory: selection.inventory,
    playbook: selection.playbook,
    limit: selection.limit ?? null,
    tags: selection.tags,
    skipTags: selection.skipTags,
    digests: {
      playbook: playbookDigest(made.playbookBytes),
      hosts: hostsDigest(saved.map((h) => h.configDigest)),
    },
    plans,
    hosts: saved,
  };
}

function planKey(body: PlanBody): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 16);
}

export class PlanFileError extends Error {}

/** Written atomically (temp file + rename): a plan file is whole or absent. */
export function writePlanFile(file: string, plan: SavedPlan): void {
  writeAtomically(file, `${JSON.stringify(plan, null, 2)}\n`);
}

export function readPlanFile(file: string): SavedPlan {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PlanFileError(`cannot read plan file ${file}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new PlanFileError(
      `${file} is not a saved plan: ${(err as Error).message}. Make one with provision plan INVENTORY -o ${file}.`,
    );
  }
  const plan = data as Partial<SavedPlan> | null;
  if (
    plan?.format !== PLAN_FORMAT ||
    !Array.isArray(plan.hosts) ||
    typeof plan.digests !== "object" ||
    typeof plan.plans !== "object"
  )
    throw new PlanFileError(
      `${file} is not a saved plan (no "format": "${PLAN_FORMAT}"). Make one with provision plan INVENTORY -o ${file}.`,
    );
  if (plan.formatVersion !== 1)
    throw new PlanFileError(
      `${file} has plan format version ${String(plan.formatVersion)}; this provision reads version 1. Make the plan again with this provision.`,
    );
  const unknown = plan.hosts.filter((h) => !Object.hasOwn(plan.plans!, h.plan)).map((h) => h.host);
  if (unknown.length > 0)
    throw new PlanFileError(`${file} is damaged: no plan for ${unknown.join(", ")}. Make the plan again.`);
  return plan as SavedPlan;
}

/** The saved hosts as the reports `plan` printed, for rendering and for the rollout. */
export function reportsOf(plan: SavedPlan): HostReport[] {
  return plan.hosts.map((h) => ({ host: h.host, status: h.status, plan: { host: h.host, ...plan.plans[h.plan]! } }));
}
