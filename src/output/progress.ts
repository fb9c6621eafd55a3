import type { HostReport, HostStage, SessionEvents } from "../report.js";
import type { BatchSummary, RolloutHooks } from "../rollout/run.js";
import { plural } from "./words.js";
import { foldHostsWithin, hostsTitle } from "./hostList.js";
import { groupOutcomes, outcomeKey, type Outcome } from "./outcomes.js";

type Write = (text: string) => void;

const PHASE_VERBS = { plan: "planned", verify: "verified", rollback: "rolled back", status: "read" } as const;

/**
 * Run progress. On a terminal: one status line redrawn in place (batch, hosts done/failed, what
 * the busiest hosts are doing) plus a permanent line per batch. Elsewhere (CI): plain lines,
 * nothing redrawn: a batch's start, the first host of each kind of failure when it happens, and at
 * the batch's end one line per outcome with its hosts folded, so 200 hosts failing alike are a few
 * lines, not 200.
 */
export class Progress implements SessionEvents {
  private batch = 0;
  private batches = 0;
  private done = 0;
  private failed = 0;
  private readonly active = new Map<string, HostStage>();
  private verb = "done";
  private batchHosts: string[] = [];
  private batchDone: HostReport[] = [];
  /** Failures of this batch already printed as they happened, by outcome, with the host printed. */
  private readonly shownFailures = new Map<string, string>();

  constructor(
    private readonly total: number,
    private readonly write: Write,
    private readonly tty: boolean,
  ) {}

  stage(host: string, stage: HostStage): void {
    this.active.set(host, stage);
    if (this.tty) this.redraw();
  }

  hooks(pause: RolloutHooks["pause"]): RolloutHooks {
    return {
      pause,
      batchStart: (batch, count, hosts) => {
        this.batch = batch;
        this.batches = count;
        this.batchHosts = hosts;
        this.batchDone = [];
        this.shownFailures.clear();
        this.line(`batch ${batch}/${count}: ${plural(hosts.length, "host")} (${foldHostsWithin(hosts, 80)})`);
      },
      hostDone: (r) => {
        this.active.delete(r.host);
        this.done++;
        if (r.status === "failed" || r.status === "unreachable") this.failed++;
        if (this.tty) this.redraw();
        else this.hostDoneInCi(r);
      },
      batchEnd: (s: BatchSummary, count) => {
        if (!this.tty) this.batchOutcomes();
        this.line(`batch ${s.index}/${count} done: ${s.failed} failed (${s.tolerated} tolerated)`);
      },
    };
  }

  /**
   * A host's plan, verify or rollback is over. Counted outside a rollout only (a rollout reports its
   * hosts through its hooks), and drawn on a terminal only: in CI the report that follows says it all.
   */
  finished(report: HostReport, phase: keyof typeof PHASE_VERBS): void {
    if (this.batches > 0) return;
    this.active.delete(report.host);
    this.done++;
    if (report.status === "failed" || report.status === "unreachable") this.failed++;
    this.verb = PHASE_VERBS[phase];
    if (this.tty) this.redraw();
  }

  /** Ends a phase (the first plan, or the run): clears the status line, what hosts were doing, and the count. */
  finish(): void {
    this.active.clear();
    this.done = 0;
    this.failed = 0;
    this.verb = "done";
    if (this.tty) this.write("\r\x1b[K");
  }

  /** A failure of a new kind is printed at once (CI logs show when it happened); the rest wait for the batch's end. */
  private hostDoneInCi(r: HostReport): void {
    this.batchDone.push(r);
    const outcome = hostOutcome(r);
    if (!outcome.perHostDetails) return;
    const key = outcomeKey(outcome);
    if (this.shownFailures.has(key)) return;
    this.shownFailures.set(key, r.host);
    this.write(`${r.host}: ${outcome.text}\n`);
  }

  /** One line per outcome of the batch, in the batch's host order; a failure already printed whole is not repeated. */
  private batchOutcomes(): void {
    const order = new Map(this.batchHosts.map((h, i) => [h, i]));
    const reports = [...this.batchDone].sort((a, b) => (order.get(a.host) ?? 0) - (order.get(b.host) ?? 0));
    const printed = new Set(this.shownFailures.values());
    for (const g of groupOutcomes(reports.map(hostOutcome))) {
      if (g.hosts.length === 1 && printed.has(g.hosts[0]!)) continue;
      this.write(`${hostsTitle(g.hosts)}: ${g.text}\n`);
    }
    this.batchDone = [];
  }

  private line(text: string): void {
    this.write(this.tty ? `\r\x1b[K${text}\n` : `${text}\n`);
    if (this.tty) this.redraw();
  }

  private redraw(): void {
    const busy = [...this.active.entries()]
      .slice(0, 3)
      .map(([h, s]) => `${h}: ${s}`)
      .join(", ");
    const more = this.active.size > 3 ? ` +${this.active.size - 3}` : "";
    const head = this.batches > 0 ? `batch ${this.batch}/${this.batches} · ` : "";
    const status = `${head}${this.done}/${this.total} hosts ${this.verb} · ${this.failed} failed${busy ? ` · ${busy}${more}` : ""}`;
    // A terminal of unknown size (script(1), some CI runners) reports 0 columns.
    this.write(`\r\x1b[K${status.slice(0, (process.stderr.columns || 120) - 1)}`);
  }
}

/** What a host's line says: failures alike but for per-host details share a line. */
function hostOutcome(r: HostReport): Outcome<HostReport> {
  if (r.error)
    return { host: r.host, item: r, kind: r.status, text: `${r.status}: ${r.error.message}`, perHostDetails: true };
  const verified = r.checks?.filter((c) => c.ok).length ?? 0;
  const text = `${r.status}, verified ${verified}/${r.checks?.length ?? 0}`;
  return { host: r.host, item: r, kind: r.status, text, perHostDetails: false };
}
