/** A count of hosts, or a percentage (`"10%"`) of some total. */
export type Amount = number | string;

/**
 * How `run` rolls out, like Ansible's `serial` and `max_fail_percentage`, with one difference
 * stated plainly: a threshold is the number of failed hosts *tolerated*; the run stops when a
 * batch's (or the run's) failed hosts EXCEED it. Unreachable hosts count as failed.
 */
export interface RolloutPolicy {
  /** Batch sizes in order; the last one repeats until every host is done. */
  batches: Amount[];
  /** Failed hosts tolerated in one batch (count, or % of that batch). */
  maxFailPerBatch: Amount;
  /** Failed hosts tolerated in the whole run (count, or % of all hosts). */
  maxFailTotal: Amount;
  /** Seconds to wait between batches, or "prompt" to wait for Enter on a terminal. */
  pause: number | "prompt";
  /** Go on when a batch's fresh plan differs from the plan shown at the start. */
  allowPlanDrift: boolean;
}

export const DEFAULT_POLICY: RolloutPolicy = {
  batches: ["100%"],
  maxFailPerBatch: 0,
  maxFailTotal: 0,
  pause: 0,
  allowPlanDrift: false,
};

export const AMOUNT_PATTERN = /^(\d+|\d+(\.\d+)?%)$/;

export class AmountError extends Error {}

export function parseAmount(text: string): Amount {
  const t = text.trim();
  if (!AMOUNT_PATTERN.test(t)) throw new AmountError(`"${text}" is not a count (3) or a percentage (10%)`);
  return t.endsWith("%") ? t : Number(t);
}

/** Resolves an amount against a total: percentages round down (Ansible's rule), counts are as given. */
export function resolveAmount(amount: Amount, total: number): number {
  if (typeof amount === "number") return amount;
  const pct = Number(amount.replace(/%$/, ""));
  return Math.floor((total * pct) / 100);
}

/**
 * Pure: splits `total` hosts into batch sizes. Every batch has at least one host (a percentage that
 * rounds to 0 becomes 1), the last size repeats, and the sizes add up to exactly `total`.
 */
export function batchSizes(total: number, batches: readonly Amount[]): number[] {
  if (total <= 0) return [];
  const plan = batches.length === 0 ? ["100%"] : batches;
  const sizes: number[] = [];
  let done = 0;
  for (let i = 0; done < total; i++) {
    const amount = plan[Math.min(i, plan.length - 1)]!;
    const size = Math.min(total - done, Math.max(1, resolveAmount(amount, total)));
    sizes.push(size);
    done += size;
  }
  return sizes;
}

export function partition<T>(items: readonly T[], sizes: readonly number[]): T[][] {
  const out: T[][] = [];
  let start = 0;
  for (const size of sizes) {
    out.push(items.slice(start, start + size));
    start += size;
  }
  return out;
}

/** The run stops when failures exceed what is tolerated (so 0 tolerates none). */
export function exceeds(failed: number, tolerated: number): boolean {
  return failed > tolerated;
}
