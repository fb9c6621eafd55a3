import type { ConfigProblem } from "../config/errors.js";
import { formatKeyPath } from "../config/yamlFile.js";
import type { Play, RawRollout } from "../playbook.js";
import { AmountError, DEFAULT_POLICY, parseAmount, type Amount, type RolloutPolicy } from "./policy.js";

/** Flags that override the playbook's `rollout:` (all strings, as typed). */
export interface RolloutFlags {
  batches?: string;
  maxFailPerBatch?: string;
  maxFailTotal?: string;
  pause?: string;
  allowPlanDrift?: boolean;
}

/**
 * One rollout policy per run: the first play's `rollout:`; another play with a different one is an
 * error (hosts are rolled out once, with all their plays' roles). Flags override it.
 */
export function rolloutPolicy(plays: Play[], flags: RolloutFlags, problems: ConfigProblem[]): RolloutPolicy {
  const withRollout = plays.filter((p) => p.rollout !== undefined);
  const first = withRollout[0];
  for (const other of withRollout.slice(1)) {
    if (JSON.stringify(other.rollout) !== JSON.stringify(first!.rollout)) {
      const path = [other.index, "rollout"];
      problems.push({
        file: other.source.file,
        ...other.source.locate(path, "key"),
        keyPath: formatKeyPath(path),
        severity: "error",
        problem: `a second, different rollout policy (play "${first!.name}" has another): a run rolls each host out once, with all its plays' roles`,
        fix: "keep one rollout: block, in the first play, or make them identical",
      });
    }
  }
  const fromPlaybook = fromRaw(first?.rollout ?? {});
  return { ...fromPlaybook, ...fromFlags(flags, problems) };
}

function fromRaw(raw: RawRollout): RolloutPolicy {
  return {
    batches: raw.batches ?? DEFAULT_POLICY.batches,
    maxFailPerBatch: raw.max_fail_per_batch ?? DEFAULT_POLICY.maxFailPerBatch,
    maxFailTotal: raw.max_fail_total ?? DEFAULT_POLICY.maxFailTotal,
    pause: raw.pause ?? DEFAULT_POLICY.pause,
    allowPlanDrift: raw.allow_plan_drift ?? DEFAULT_POLICY.allowPlanDrift,
  };
}

function fromFlags(flags: RolloutFlags, problems: ConfigProblem[]): Partial<RolloutPolicy> {
  const out: Partial<RolloutPolicy> = {};
  const amount = (flag: string, text: string): Amount | undefined => {
    try {
      return parseAmount(text);
    } catch (err) {
      if (!(err instanceof AmountError)) throw err;
      problems.push({
        file: flag,
        line: 1,
        col: 1,
        keyPath: "",
        severity: "error",
        problem: err.message,
        fix: "write a count (3) or a percentage (10%)",
      });
      return undefined;
    }
  };
  if (flags.batches !== undefined) {
    const parts = flags.batches.split(",").map((b) => amount("--batches", b));
    if (parts.every((p) => p !== undefined)) {
      if (parts.some((p) => p === 0)) {
        problems.push({
          file: "--batches",
          line: 1,
          col: 1,
          keyPath: "",
          severity: "error",
          problem: "a batch of 0 hosts",
          fix: "use sizes of at least 1, e.g. 1,10%,100%",
        });
      } else out.batches = parts as Amount[];
    }
  }
  if (flags.maxFailPerBatch !== undefined) {
    const a = amount("--max-fail-per-batch", flags.maxFailPerBatch);
    if (a !== undefined) out.maxFailPerBatch = a;
  }
  if (flags.maxFailTotal !== undefined) {
    const a = amount("--max-fail-total", flags.maxFailTotal);
    if (a !== undefined) out.maxFailTotal = a;
  }
  if (flags.pause !== undefined) {
    if (flags.pause === "prompt") out.pause = "prompt";
    else if (/^\d+$/.test(flags.pause)) out.pause = Number(flags.pause);
    else
      problems.push({
        file: "--pause",
        line: 1,
        col: 1,
        keyPath: "",
        severity: "error",
        problem: `"${flags.pause}" is neither seconds nor "prompt"`,
        fix: "write --pause 30 or --pause prompt",
      });
  }
  if (flags.allowPlanDrift) out.allowPlanDrift = true;
  return out;
}
