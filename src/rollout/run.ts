import type { HostReport } from "../report.js";
import type { Session } from "../session.js";
import type { ResolvedHost } from "../resolve.js";
import { exceeds, type RolloutPolicy } from "./policy.js";
import { layoutHosts, layoutRollout, type RolloutLayout } from "./layout.js";
import { foldHosts } from "../output/hostList.js";

export interface BatchSummary {
  index: number;
  /** This run's hosts of the batch. */
  hosts: string[];
  failed: number;
  /** Hosts of the whole batch, across every shard. */
  size: number;
  tolerated: number;
}

export interface RolloutResult {
  /** Every targeted host in inventory order, "not-reached" where the rollout stopped before it. */
  reports: HostReport[];
  batches: BatchSummary[];
  /** Why no further batch started, if the rollout stopped early. */
  stopped?: string;
  /** When a batch's fresh plan differed from the one shown at the start: that fresh plan. */
  drift?: HostReport[];
}

export interface RolloutHooks {
  batchStart?(batch: number, count: number, hosts: string[]): void;
  hostDone?(report: HostReport): void;
  batchEnd?(summary: BatchSummary, count: number): void;
  /** Waits between batches (seconds, or Enter on a terminal); false stops the rollout there. */
  pause(pause: RolloutPolicy["pause"]): Promise<boolean>;
}

export interface RolloutOptions {
  /**
   * The shown plan was made moments ago and nobody waited on it (no confirmation prompt): batch 1
   * applies it as it is instead of reading its hosts' facts again (apply still refuses a file
   * that changed since). Every later batch is re-planned.
   */
  shownIsFresh?: boolean;
  /**
   * The shown plan is a reviewed one (`run --plan`): a host whose fresh plan differs from it fails
   * with `explain(freshReport)` instead of stopping the rollout, and the other hosts get what was reviewed.
   */
  reviewed?: { explain(fresh: HostReport): string };
  /**
   * After each batch: the rollout so far, hosts of later batches "not-reached" (a run writes its
   * record from it, so a controller killed mid-run leaves a record `--resume` can take).
   */
  checkpoint?(sofar: RolloutResult): void;
  /** The batches to run (a shard's part, one stage); by default every host's, cut by the policy. */
  layout?: RolloutLayout<ResolvedHost>;
}

const isFailure = (r: HostReport) => r.status === "failed" || r.status === "unreachable";

/**
 * Rolls the shown plan out batch by batch. Before each batch its hosts' facts are read again and
 * their plan re-made; if it differs from what was shown, the rollout stops (unless allowed). A
 * batch counts as done only when its hosts verify; when its failures (or the run's) exceed what
 * the policy tolerates, no further batch starts.
 */
export async function rollout(
  session: Session,
  hosts: ResolvedHost[],
  shown: HostReport[],
  policy: RolloutPolicy,
  hooks: RolloutHooks,
  options: RolloutOptions = {},
): Promise<RolloutResult> {
  const shownByHost = new Map(shown.map((r) => [r.host, r]));
  const layout = options.layout ?? layoutRollout(hosts, policy);
  const batches = layout.batches.filter((b) => b.hosts.length > 0);
  const sharded = layout.shard !== undefined;
  const done = new Map<string, HostReport>();
  const summaries: BatchSummary[] = [];
  let stopped: string | undefined;
  let drift: HostReport[] | undefined;

  for (const [i, { index, hosts: batch, size, tolerated }] of batches.entries()) {
    if (i > 0 && !(await hooks.pause(policy.pause))) {
      stopped = `stopped at the pause before batch ${index}`;
      break;
    }
    const names = batch.map((h) => h.name);
    hooks.batchStart?.(index, layout.batchCount, names);
    const reuseShown =
      i === 0 && options.shownIsFresh === true && !options.reviewed && batch.every((h) => shownByHost.has(h.name));
    const planned = reuseShown ? batch.map((h) => shownByHost.get(h.name)!) : await session.plan(batch);
    // Only a plan that differs is drift; a host that can't be planned now (lost, timed out) fails
    // in this batch and counts against the thresholds like any other failure.
    const changed = planned.filter((r) => r.plan && planKey(r) !== planKey(shownByHost.get(r.host)));
    const reviewed = options.reviewed;
    const fresh = reviewed
      ? planned.map((r): HostReport =>
          changed.includes(r)
            ? { host: r.host, status: "failed", error: { kind: "plan-changed", message: reviewed.explain(r) } }
            : r,
        )
      : planned;
    if (changed.length > 0 && !reviewed && !policy.allowPlanDrift) {
      drift = changed;
      stopped = `batch ${index}: the plan of ${foldHosts(changed.map((r) => r.host))} changed since it was shown (the hosts changed meanwhile); nothing more was applied. Review the new plan below and run again, or pass --allow-plan-drift`;
      break;
    }
    const reachable = fresh.filter((r) => r.plan);
    const applied = new Map((await session.apply(batch, reachable)).map((r) => [r.host, r]));
    const reports = fresh.map((r) => applied.get(r.host) ?? r);
    for (const r of reports) {
      done.set(r.host, r);
      hooks.hostDone?.(r);
    }
    const summary: BatchSummary = { index, hosts: names, failed: reports.filter(isFailure).length, size, tolerated };
    summaries.push(summary);
    hooks.batchEnd?.(summary, layout.batchCount);
    const totalFailed = [...done.values()].filter(isFailure).length;
    // A shard stops as soon as its own failures exceed the whole batch's (or run's) budget: the
    // merged count can only be higher. Below it, the gate that merges every shard decides.
    const ofBatch = sharded ? `${batch.length} hosts of this shard (the batch has ${size})` : `${batch.length} hosts`;
    if (exceeds(summary.failed, tolerated)) {
      stopped = `batch ${index}: ${summary.failed} of ${ofBatch} failed, more than the ${tolerated} tolerated per batch (max_fail_per_batch ${String(policy.maxFailPerBatch)})`;
    } else if (exceeds(totalFailed, layout.totalTolerated)) {
      const ofRun = sharded
        ? `hosts of this shard failed (the run has ${layout.selected.hosts})`
        : `hosts failed in this run`;
      stopped = `after batch ${index}: ${totalFailed} of ${layoutHosts(layout).length} ${ofRun}, more than the ${layout.totalTolerated} tolerated (max_fail_total ${String(policy.maxFailTotal)})`;
    }
    if (stopped) break;
    if (options.checkpoint && i < batches.length - 1) options.checkpoint(resultOf(layout, done, summaries));
  }
  return resultOf(layout, done, summaries, stopped, drift);
}

function resultOf(
  layout: RolloutLayout<ResolvedHost>,
  done: Map<string, HostReport>,
  batches: BatchSummary[],
  stopped?: string,
  drift?: HostReport[],
): RolloutResult {
  const reports = layoutHosts(layout).map((h) => done.get(h.name) ?? { host: h.name, status: "not-reached" as const });
  return { reports, batches: [...batches], ...(stopped ? { stopped } : {}), ...(drift ? { drift } : {}) };
}

/** What a plan would do to a host: its changes, or its error kind. */
function planKey(r: HostReport | undefined): string {
  if (!r) return "none";
  if (!r.plan) return `error:${r.error?.kind ?? "unknown"}`;
  return JSON.stringify(r.plan.changes);
}
