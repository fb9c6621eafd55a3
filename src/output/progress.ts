import type { HostReport, HostStage, SessionEvents } from "../report.js";
import type { BatchSummary, RolloutHooks } from "../rollout/run.js";
import { plural } from "./words.js";

type Write = (text: string) => void;

/**
 * Run progress. On a terminal: one status line redrawn in place (batch, hosts done/failed, what
 * the busiest hosts are doing) plus a permanent line per batch. Elsewhere (CI): one plain line per
 * event, nothing redrawn.
 */
export class Progress implements SessionEvents {
  private batch = 0;
  private batches = 0;
  private done = 0;
  private failed = 0;
  private readonly active = new Map<string, HostStage>();

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
        this.line(`batch ${batch}/${count}: ${plural(hosts.length, "host")} (${abbreviate(hosts)})`);
      },
      hostDone: (r) => {
        this.active.delete(r.host);
        this.done++;
        if (r.status === "failed" || r.status === "unreachable") this.failed++;
        if (this.tty) this.redraw();
        else this.write(`${hostLine(r)}\n`);
      },
      batchEnd: (s: BatchSummary, count) => {
        this.line(`batch ${s.index}/${count} done: ${s.failed} failed (${s.tolerated} tolerated)`);
      },
    };
  }

  /** Ends a phase (the first plan, or the run): clears the status line and what hosts were doing. */
  finish(): void {
    this.active.clear();
    if (this.tty) this.write("\r\x1b[K");
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
    const status = `${head}${this.done}/${this.total} hosts done · ${this.failed} failed${busy ? ` · ${busy}${more}` : ""}`;
    this.write(`\r\x1b[K${status.slice(0, (process.stderr.columns ?? 120) - 1)}`);
  }
}

function hostLine(r: HostReport): string {
  if (r.error) return `${r.host}: ${r.status}: ${r.error.message}`;
  const verified = r.checks?.filter((c) => c.ok).length ?? 0;
  return `${r.host}: ${r.status}, verified ${verified}/${r.checks?.length ?? 0}`;
}

function abbreviate(hosts: string[]): string {
  return hosts.length <= 6 ? hosts.join(", ") : `${hosts.slice(0, 5).join(", ")} … ${hosts.at(-1)}`;
}
