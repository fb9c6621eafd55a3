import { applyChanges, type ChangeOutcome } from "./apply.js";
import { buildGatherScript, FactError, parseGatherOutput } from "./facts/gather.js";
import { mapLimit } from "./pool.js";
import { factRequestsFor, planHost, type HostPlan } from "./plan.js";
import type { FactRequest, Facts } from "./role.js";
import type { ResolvedHost } from "./resolve.js";
import { newNonce } from "./remote/records.js";
import { HostError, type Transport } from "./transport/types.js";
import { evaluateChecks, factRequestsForChecks, type CheckResult } from "./verify.js";

export type HostStatus = "unchanged" | "changed" | "failed" | "unreachable";

/** What happened on one host; the CLI prints it and `--json` emits it. */
export interface HostReport {
  host: string;
  status: HostStatus;
  plan?: HostPlan;
  outcomes?: ChangeOutcome[];
  checks?: CheckResult[];
  error?: { kind: string; message: string };
}

export type Connector = (host: ResolvedHost) => Promise<Transport>;

/**
 * Holds one connection per host across plan → apply → verify, so a run costs one handshake and
 * three round trips per host (gather, apply, read back).
 */
export class Session {
  private readonly transports = new Map<string, Transport>();
  private readonly lastFacts = new Map<string, Facts>();

  constructor(
    private readonly connect: Connector,
    private readonly forks: number,
  ) {}

  async plan(hosts: ResolvedHost[], purpose: "plan" | "verify" = "plan"): Promise<HostReport[]> {
    return mapLimit(hosts, this.forks, (host) =>
      this.guard(host.name, async () => {
        const transport = await this.transport(host);
        const facts = await gather(transport, factRequestsFor(host), host.become);
        this.lastFacts.set(host.name, facts);
        let plan: HostPlan;
        try {
          plan = planHost(host, facts, purpose);
        } catch (err) {
          throw new HostError(`planning failed: ${(err as Error).message}`, "plan");
        }
        return { host: host.name, status: plan.changes.length > 0 ? "changed" : "unchanged", plan };
      }),
    );
  }

  /** Applies each planned host's changes, then reads every check back through the same connection. */
  async apply(hosts: ResolvedHost[], planned: HostReport[]): Promise<HostReport[]> {
    const byName = new Map(hosts.map((h) => [h.name, h]));
    return mapLimit(planned, this.forks, (report) => {
      if (!report.plan) return Promise.resolve(report);
      const plan = report.plan;
      return this.guard(report.host, async () => {
        const host = byName.get(report.host)!;
        const transport = await this.transport(host);
        const outcomes = await applyChanges(transport, plan.changes, host.become);
        const checks = await readBack(transport, plan, host.become);
        const failed = outcomes.some((o) => !o.ok) || checks.some((c) => !c.ok);
        return {
          host: report.host, plan, outcomes, checks,
          status: failed ? "failed" : plan.changes.length > 0 ? "changed" : "unchanged",
          ...(failed ? { error: { kind: "apply", message: describeFailures(outcomes, checks) } } : {}),
        };
      });
    });
  }

  /** Reads back every managed value; a host whose values all match is "unchanged". */
  async verify(hosts: ResolvedHost[]): Promise<HostReport[]> {
    const planned = await this.plan(hosts, "verify");
    // Every check reads a key or file the roles already gathered, so the plan's facts are the read-back.
    return planned.map((report) => {
      const facts = this.lastFacts.get(report.host);
      if (!report.plan || !facts) return report;
      const checks = evaluateChecks(report.plan.checks, facts);
      return { host: report.host, plan: report.plan, checks, status: checks.every((c) => c.ok) ? "unchanged" : "failed" };
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.transports.values()].map((t) => t.close().catch(() => undefined)));
    this.transports.clear();
  }

  private async transport(host: ResolvedHost): Promise<Transport> {
    let t = this.transports.get(host.name);
    if (!t) {
      t = await this.connect(host);
      this.transports.set(host.name, t);
    }
    return t;
  }

  private async guard(host: string, fn: () => Promise<HostReport>): Promise<HostReport> {
    try {
      return await fn();
    } catch (err) {
      const kind = err instanceof HostError ? err.kind : err instanceof FactError ? "facts" : "internal";
      const message = err instanceof Error ? err.message : String(err);
      const t = this.transports.get(host);
      if (kind === "unreachable" || kind === "timeout") {
        this.transports.delete(host);
        await t?.close().catch(() => undefined);
      }
      return { host, status: kind === "unreachable" || kind === "hostkey" || kind === "auth" ? "unreachable" : "failed", error: { kind, message } };
    }
  }
}

async function gather(transport: Transport, requests: FactRequest[], become: boolean): Promise<Facts> {
  const nonce = newNonce();
  const result = await transport.exec(buildGatherScript(requests, nonce), { sudo: become });
  if (result.code !== 0) throw new HostError(`reading facts failed (exit ${result.code}): ${result.stderr.trim()}`, "command");
  return parseGatherOutput(result.stdout, nonce, requests);
}

async function readBack(transport: Transport, plan: HostPlan, become: boolean): Promise<CheckResult[]> {
  const facts = await gather(transport, factRequestsForChecks(plan.checks), become);
  return evaluateChecks(plan.checks, facts);
}

function describeFailures(outcomes: ChangeOutcome[], checks: CheckResult[]): string {
  const lines = [
    ...outcomes.filter((o) => !o.ok).map((o) => `${o.change.kind === "file" ? o.change.path : o.change.key}: ${o.error}`),
    ...checks.filter((c) => !c.ok).map((c) => c.check.message),
  ];
  return lines.join("; ");
}
