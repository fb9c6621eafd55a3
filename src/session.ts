import { applyChanges, type ChangeOutcome } from "./remote/apply.js";
import { buildGatherScript, FactError, parseGatherOutput } from "./remote/gather.js";
import { mapLimit } from "./mapLimit.js";
import { contentKey } from "./contentKey.js";
import { changeTarget, factRequestsFor, planHost, probesOf, type HostPlan, type PlannedCheck } from "./plan.js";
import { probeKey, type FactRequest, type Facts, type ProbeResult } from "./role.js";
import type { ResolvedHost } from "./resolve.js";
import { newNonce } from "./remote/records.js";
import {
  parseSnapshot,
  restoreChanges,
  revertChanges,
  SNAPSHOT_PATH,
  SNAPSHOT_ROLE,
  snapshotChange,
  SnapshotError,
  type Snapshot,
} from "./snapshot.js";
import { HostError, type Transport } from "./transport/types.js";
import type { HostReport, SessionEvents } from "./report.js";
import { evaluateChecks, factRequestsForChecks, type CheckResult } from "./verify.js";
import { plural } from "./output/words.js";

/**
 * Holds one connection per host across plan → apply → verify, so a run costs one handshake and
 * three round trips per host (gather, apply, read back), plus one fresh login after changes to
 * logins; a host with nothing to change costs one handshake and one round trip.
 */
export class Session {
  private readonly transports = new Map<string, Transport>();
  private readonly lastFacts = new Map<string, Facts>();
  /** The facts each plan was made from: for a plan with no changes they are already the read-back. */
  private readonly factsOfPlan = new WeakMap<HostPlan, Facts>();
  private readonly sharedPlans = new Map<string, Omit<HostPlan, "host">>();
  private readonly strings = new Map<string, string>();
  private readonly probeAnswers = new Map<string, ProbeResult>();
  private readonly keepConnections: number;
  private readonly keepFacts: KeepFacts;

  constructor(
    private readonly connect: (host: ResolvedHost) => Promise<Transport>,
    private readonly forks: number,
    private readonly events: SessionEvents = {},
    /** Ends what the hosts' connections shared (bastion connections, OpenSSH masters). */
    private readonly releaseShared: () => Promise<void> = async () => undefined,
    options: SessionOptions = {},
  ) {
    this.keepConnections = options.keepConnections ?? Infinity;
    this.keepFacts = options.keepFacts ?? "until-done";
  }

  async plan(hosts: ResolvedHost[], purpose: "plan" | "verify" = "plan"): Promise<HostReport[]> {
    return mapLimit(hosts, this.forks, (host) => this.planOne(host, purpose));
  }

  private async planOne(host: ResolvedHost, purpose: "plan" | "verify"): Promise<HostReport> {
    const report = await this.guard(host.name, async () => {
      const transport = await this.transport(host);
      this.events.stage?.(host.name, "reading facts");
      const facts = await gather(
        transport,
        [...factRequestsFor(host), { kind: "file", path: SNAPSHOT_PATH }],
        host.become,
      );
      if (this.keepFacts !== "none") this.lastFacts.set(host.name, facts);
      const plan = planHost(host, facts, purpose, transport.remoteAddress);
      if (plan.refusals.length > 0) return { host: host.name, status: "failed", error: planningFailed(plan.refusals) };
      // Before the first change, the host's originals are recorded for `provision rollback`.
      const snapshot = purpose === "plan" ? snapshotChange(facts.files[SNAPSHOT_PATH] ?? null, plan.changes) : null;
      if (snapshot) plan.changes.unshift(snapshot);
      const shared = this.share(plan);
      // Until its apply, an unchanged host keeps only what its checks read, each value shared with alike hosts.
      if (shared.changes.length === 0) this.factsOfPlan.set(shared, this.checkFacts(facts, shared.checks, host));
      return { host: host.name, status: shared.changes.length > 0 ? "changed" : "unchanged", plan: shared };
    });
    // Beyond the connections kept open, a host's connection closes until its next step needs it:
    // memory follows --forks, not the number of hosts, for one more handshake per host.
    if (this.transports.size > this.keepConnections) await this.release(host.name);
    // verify reports a host when its checks are read, not when it is planned.
    if (purpose === "plan") this.events.finished?.(report, "plan");
    return report;
  }

  /**
   * Hosts alike get plans alike: one copy of the changes (rendered files and all), checks and
   * notes serves every host whose plan has the same, so a fleet's plans cost what its distinct
   * plans do. Plans are never changed once made.
   */
  private share(plan: HostPlan): HostPlan {
    const parts = { changes: plan.changes, checks: plan.checks, notes: plan.notes, refusals: plan.refusals };
    const key = contentKey(parts);
    const known = this.sharedPlans.get(key);
    if (known) return { host: plan.host, ...known };
    this.sharedPlans.set(key, parts);
    return plan;
  }

  /** The facts `checks` read, out of `facts`; strings equal to another host's are that host's. */
  private checkFacts(facts: Facts, checks: PlannedCheck[], host: ResolvedHost): Facts {
    const out: Facts = { sysctl: {}, files: {}, fileSha256: {}, listeningPorts: null, probes: {} };
    const text = (v: string | null | undefined) => (v == null ? (v ?? null) : this.intern(v));
    for (const r of factRequestsForChecks(checks, probesOf(host))) {
      if (r.kind === "sysctl" && r.key in facts.sysctl) out.sysctl[r.key] = text(facts.sysctl[r.key]);
      else if (r.kind === "file" && r.path in facts.files) out.files[r.path] = text(facts.files[r.path]);
      else if (r.kind === "probe") {
        const key = probeKey(r.probe.name, r.arg);
        const found = facts.probes?.[key];
        if (found) out.probes![key] = this.sharedProbe(found);
      } else if (r.kind === "listening-ports") out.listeningPorts = facts.listeningPorts;
    }
    return out;
  }

  /** A probe's answer equal to one another host gave is that one (answers are never changed). */
  private sharedProbe(result: ProbeResult): ProbeResult {
    const key = contentKey(result);
    const known = this.probeAnswers.get(key);
    if (known) return known;
    this.probeAnswers.set(key, result);
    return result;
  }

  private intern(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }

  /** The facts the latest plan of this host was made from. */
  factsOf(host: string): Facts | undefined {
    return this.lastFacts.get(host);
  }

  /** Applies each planned host's changes, then reads every check back through the same connection. */
  async apply(hosts: ResolvedHost[], planned: HostReport[]): Promise<HostReport[]> {
    const byName = new Map(hosts.map((h) => [h.name, h]));
    return mapLimit(planned, this.forks, async (report) => {
      if (!report.plan) return report;
      const plan = report.plan;
      const done = await this.guard(report.host, async () => {
        const host = byName.get(report.host)!;
        const known = plan.changes.length === 0 ? this.factsOfPlan.get(plan) : undefined;
        this.factsOfPlan.delete(plan);
        if (known) {
          // Nothing to apply: the facts this plan was made from are the read-back (as in verify). The
          // connection that read them logged in during this run, after the last change provision
          // made here, so it is itself a fresh login: fresh-login checks read from it too.
          this.events.stage?.(host.name, "verifying");
          const facts = await this.complete(known, plan.checks, () => this.transport(host), host);
          return finished(plan, [], evaluateChecks(plan.checks, facts), "apply", "unchanged");
        }
        const transport = await this.transport(host);
        this.events.stage?.(host.name, "applying");
        const outcomes = await applyChanges(transport, plan.changes, host.become);
        const guard = await this.lockoutGuard(host, transport, plan, outcomes);
        if (guard && "report" in guard) return guard.report;
        this.events.stage?.(host.name, "verifying");
        const checks = await this.readChecks(
          host,
          () => Promise.resolve(transport),
          plan.checks,
          undefined,
          guard?.fresh,
        );
        return finished(plan, outcomes, checks, "apply", plan.changes.length > 0 ? "changed" : "unchanged");
      });
      await this.done(report.host);
      // Kept until the run ends: each value read back is one copy for every host that read the same.
      return done.checks
        ? { ...done, checks: done.checks.map((c) => (c.actual === null ? c : { ...c, actual: this.intern(c.actual) })) }
        : done;
    });
  }

  /** Reads back every managed value; a host whose values all match is "unchanged". */
  async verify(hosts: ResolvedHost[]): Promise<HostReport[]> {
    const byName = new Map(hosts.map((h) => [h.name, h]));
    // Each host is planned and verified in one go: its facts live only that long.
    return mapLimit(hosts, this.forks, async (host) => {
      const planReport = await this.planOne(host, "verify");
      const report = await this.verifyPlanned(planReport, byName);
      await this.done(planReport.host);
      this.events.finished?.(report, "verify");
      return report;
    });
  }

  private async verifyPlanned(report: HostReport, byName: Map<string, ResolvedHost>): Promise<HostReport> {
    const facts = this.lastFacts.get(report.host);
    if (!report.plan || !facts) return report;
    const plan = report.plan;
    return this.guard(report.host, async () => {
      const host = byName.get(report.host)!;
      // Checks read what the roles already gathered, so the plan's facts are the read-back;
      // only fresh-login checks cost a new connection.
      const checks = await this.readChecks(host, () => this.transport(host), plan.checks, facts);
      return { host: report.host, plan, checks, status: checks.every((c) => c.ok) ? "unchanged" : "failed" };
    });
  }

  /**
   * Puts back what the snapshot kept (files, live values; undoes recorded commands), reads it
   * back, then forgets the snapshot. A host without a snapshot has nothing to roll back, so a
   * second rollback changes nothing.
   */
  async rollback(hosts: ResolvedHost[]): Promise<HostReport[]> {
    return mapLimit(hosts, this.forks, async (host) => {
      const report = await this.rollBackHost(host);
      await this.done(host.name);
      this.events.finished?.(report, "rollback");
      return report;
    });
  }

  private rollBackHost(host: ResolvedHost): Promise<HostReport> {
    return this.guard(host.name, async () => {
      const transport = await this.transport(host);
      this.events.stage?.(host.name, "reading facts");
      const first = await gather(transport, [{ kind: "file", path: SNAPSHOT_PATH }], host.become);
      const snapshot = parseSnapshotOrFail(first.files[SNAPSHOT_PATH] ?? null);
      if (!snapshot)
        return {
          host: host.name,
          status: "unchanged",
          plan: {
            host: host.name,
            changes: [],
            checks: [],
            notes: [{ role: "rollback", text: "no snapshot: nothing to roll back" }],
            refusals: [],
          },
        };
      const requests: FactRequest[] = [
        ...Object.keys(snapshot.files).map((path): FactRequest => ({ kind: "file", path })),
        ...Object.keys(snapshot.sysctl).map((key): FactRequest => ({ kind: "sysctl", key })),
      ];
      const now = await gather(transport, requests, host.become);
      const changes = restoreChanges(snapshot, now);
      const checks = restoreChecks(snapshot);
      const plan: HostPlan = { host: host.name, changes, checks, notes: [], refusals: [] };
      this.events.stage?.(host.name, "applying");
      const outcomes = await applyChanges(transport, changes, host.become);
      this.events.stage?.(host.name, "verifying");
      const readBack = evaluateChecks(
        checks,
        await gather(transport, factRequestsForChecks(checks, new Map()), host.become),
      );
      return finished(plan, outcomes, readBack, "rollback", "changed");
    });
  }

  /**
   * After limits or addresses changed, a brand-new SSH login (through PAM, with sudo where become
   * is used) must succeed while the original connection is still open. If it fails, the host's
   * changes are reverted through the original connection and the host is reported failed. The
   * same login reads the fresh-login checks, so a run opens one extra connection, not two.
   */
  private async lockoutGuard(
    host: ResolvedHost,
    transport: Transport,
    plan: HostPlan,
    outcomes: ChangeOutcome[],
  ): Promise<{ report: HostReport } | { fresh: FreshRead } | null> {
    const risky = new Set(host.roles.filter((r) => r.role.touchesLogin).map((r) => r.role.name));
    if (!outcomes.some((o) => o.ok && risky.has(o.change.role))) return null;
    this.events.stage?.(host.name, "checking a fresh login");
    const login = await this.freshLogin(host, plan.checks.filter(isFreshCheck));
    if ("read" in login) return { fresh: login.read };
    const failure = login.failure;
    const revert = revertChanges(outcomes);
    let reverted: string;
    try {
      const results = await applyChanges(transport, revert, host.become);
      const failed = results.filter((r) => !r.ok);
      reverted =
        failed.length === 0
          ? `reverted ${plural(results.length, "change")} through the open connection`
          : `REVERT INCOMPLETE (${failed.map((f) => `${changeTarget(f.change)}: ${f.error}`).join("; ")}): fix it from a console`;
    } catch (err) {
      reverted = `REVERT FAILED (${(err as Error).message}): fix it from a console`;
    }
    return {
      report: {
        host: host.name,
        plan,
        outcomes,
        status: "failed",
        error: { kind: "lockout", message: `a fresh login failed after the change (${failure}); ${reverted}` },
      },
    };
  }

  /**
   * A new connection logs in and runs a command (through sudo where become is used): the reading
   * of the fresh-login checks' facts when there are any, else `true`. A failure means the login
   * or its command failed; output that can't be parsed only fails the checks.
   */
  private async freshLogin(
    host: ResolvedHost,
    freshChecks: PlannedCheck[],
  ): Promise<{ read: FreshRead } | { failure: string }> {
    let login: Transport | undefined;
    try {
      login = await this.connect(host);
      if (freshChecks.length > 0) {
        try {
          return {
            read: { facts: await gather(login, factRequestsForChecks(freshChecks, probesOf(host)), host.become) },
          };
        } catch (err) {
          if (err instanceof FactError) return { read: { unreadable: err.message } };
          throw err;
        }
      }
      const r = await login.exec("true", { sudo: host.become, timeoutMs: 30_000 });
      return r.code === 0
        ? { read: { facts: NO_FACTS } }
        : { failure: `\`true\` exited ${r.code}: ${r.stderr.trim()}` };
    } catch (err) {
      return { failure: err instanceof Error ? err.message : String(err) };
    } finally {
      await login?.close().catch(() => undefined);
    }
  }

  /**
   * Reads every check back. Fresh-login checks go through a brand-new SSH connection (a new login
   * through PAM), opened and closed while the original connection stays up — or were already read
   * by the lockout guard's login (`freshFacts`).
   */
  private async readChecks(
    host: ResolvedHost,
    transport: () => Promise<Transport>,
    checks: PlannedCheck[],
    known?: Facts,
    freshRead?: FreshRead,
  ): Promise<CheckResult[]> {
    const current = checks.filter((c) => !isFreshCheck(c));
    const fresh = checks.filter(isFreshCheck);
    const currentFacts = known
      ? await this.complete(known, current, transport, host)
      : await gather(await transport(), factRequestsForChecks(current, probesOf(host)), host.become);
    let freshResults: CheckResult[] = [];
    if (fresh.length > 0 && freshRead) {
      freshResults =
        "facts" in freshRead
          ? evaluateChecks(fresh, freshRead.facts)
          : fresh.map((check) => ({
              check,
              actual: `(a fresh login's facts could not be read: ${freshRead.unreadable})`,
              ok: false,
            }));
    } else if (fresh.length > 0) {
      let login: Transport | undefined;
      try {
        login = await this.connect(host);
        freshResults = evaluateChecks(
          fresh,
          await gather(login, factRequestsForChecks(fresh, probesOf(host)), host.become),
        );
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        freshResults = fresh.map((check) => ({ check, actual: `(a fresh login failed: ${why})`, ok: false }));
      } finally {
        await login?.close().catch(() => undefined);
      }
    }
    const results = new Map<PlannedCheck, CheckResult>();
    for (const r of [...evaluateChecks(current, currentFacts), ...freshResults]) results.set(r.check, r);
    return checks.map((c) => results.get(c)!);
  }

  /** Facts a check needs that planning did not read (e.g. which file wins at boot): one more read, only if any. */
  private async complete(
    known: Facts,
    checks: PlannedCheck[],
    transport: () => Promise<Transport>,
    host: ResolvedHost,
  ): Promise<Facts> {
    const missing = factRequestsForChecks(checks, probesOf(host)).filter((r) =>
      r.kind === "sysctl"
        ? !(r.key in known.sysctl)
        : r.kind === "file"
          ? !(r.path in known.files)
          : r.kind === "probe"
            ? !(probeKey(r.probe.name, r.arg) in (known.probes ?? {}))
            : false,
    );
    if (missing.length === 0) return known;
    const extra = await gather(await transport(), missing, host.become);
    return {
      ...known,
      sysctl: { ...known.sysctl, ...extra.sysctl },
      files: { ...known.files, ...extra.files },
      probes: { ...known.probes, ...extra.probes },
    };
  }

  /**
   * Runs `fn` on each host's connection, `forks` at once, and keeps the connections (up to
   * keepConnections) for the next call (`status --watch`). A host that fails yields its error
   * instead of a value.
   */
  async each<T>(
    hosts: ResolvedHost[],
    phase: "status",
    fn: (transport: Transport, host: ResolvedHost) => Promise<T>,
  ): Promise<Array<{ host: string; value: T } | { host: string; error: NonNullable<HostReport["error"]> }>> {
    return mapLimit(hosts, this.forks, async (host) => {
      let value: T | undefined;
      const report = await this.guard(host.name, async () => {
        value = await fn(await this.transport(host), host);
        return { host: host.name, status: "unchanged" };
      });
      if (this.transports.size > this.keepConnections) await this.release(host.name);
      this.events.finished?.(report, phase);
      return report.error ? { host: host.name, error: report.error } : { host: host.name, value: value as T };
    });
  }

  /** A host's last step of this command is over: its facts (unless kept) and its connection go. */
  private async done(host: string): Promise<void> {
    if (this.keepFacts !== "all") this.lastFacts.delete(host);
    await this.release(host);
  }

  private async release(host: string): Promise<void> {
    const t = this.transports.get(host);
    this.transports.delete(host);
    await t?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.transports.values()].map((t) => t.close().catch(() => undefined)));
    this.transports.clear();
    await this.releaseShared();
  }

  private async transport(host: ResolvedHost): Promise<Transport> {
    let t = this.transports.get(host.name);
    if (!t) {
      this.events.stage?.(host.name, "connecting");
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
      return {
        host,
        status: kind === "unreachable" || kind === "hostkey" || kind === "auth" ? "unreachable" : "failed",
        error: { kind, message },
      };
    }
  }
}

/** How much a session keeps between steps; by default everything, for its whole life. */
export interface SessionOptions {
  /**
   * Connections left open between steps (plan, then apply); past this many, a host's connection
   * closes after its plan and reopens for its apply. A host's connection always closes when its
   * last step is done.
   */
  keepConnections?: number;
  /**
   * "all": every host's facts until the session ends (`plan -o` saves them); "until-done": until
   * the host's apply or verify is done (a reviewed run explains refusals from them); "none": not
   * kept past planning.
   */
  keepFacts?: KeepFacts;
}

export type KeepFacts = "all" | "until-done" | "none";

/** What the lockout guard's fresh login read for the fresh-login checks. */
type FreshRead = { facts: Facts } | { unreadable: string };

const NO_FACTS: Facts = { sysctl: {}, files: {}, fileSha256: {}, listeningPorts: null, probes: {} };

function isFreshCheck(c: PlannedCheck): boolean {
  return c.kind === "probe" && c.freshLogin === true;
}

async function gather(transport: Transport, requests: FactRequest[], become: boolean): Promise<Facts> {
  const nonce = newNonce();
  const result = await transport.exec(buildGatherScript(requests, nonce), { sudo: become });
  if (result.code !== 0)
    throw new HostError(`reading facts failed (exit ${result.code}): ${result.stderr.trim()}`, "command");
  return parseGatherOutput(result.stdout, nonce, requests);
}

/** Every refusal of every role, one problem each; a single one reads as it always did. */
function planningFailed(refusals: HostPlan["refusals"]): NonNullable<HostReport["error"]> {
  const problems = refusals.map((r) => (refusals.length === 1 ? r.text : `${r.role}: ${r.text}`));
  const message =
    problems.length === 1
      ? `planning failed: ${problems[0]}`
      : `planning failed, ${problems.length} problems: ${problems.join("; ")}`;
  return { kind: "plan", message, problems };
}

/** A host's report after changes were applied and read back: `success` unless any of them failed. */
function finished(
  plan: HostPlan,
  outcomes: ChangeOutcome[],
  checks: CheckResult[],
  kind: "apply" | "rollback",
  success: "changed" | "unchanged",
): HostReport {
  const failed = outcomes.some((o) => !o.ok) || checks.some((c) => !c.ok);
  const report: HostReport = { host: plan.host, plan, outcomes, checks, status: failed ? "failed" : success };
  return failed ? { ...report, error: { kind, message: describeFailures(outcomes, checks) } } : report;
}

function describeFailures(outcomes: ChangeOutcome[], checks: CheckResult[]): string {
  const lines = [
    ...outcomes.filter((o) => !o.ok).map((o) => `${changeTarget(o.change)}: ${o.error}`),
    ...checks.filter((c) => !c.ok).map((c) => c.check.message),
  ];
  return lines.join("; ");
}

function parseSnapshotOrFail(text: string | null): Snapshot | null {
  try {
    return parseSnapshot(text);
  } catch (err) {
    if (err instanceof SnapshotError) throw new HostError(err.message, "plan");
    throw err;
  }
}

/** What a finished rollback must read back: every original value and file, and no snapshot. */
function restoreChecks(s: Snapshot): PlannedCheck[] {
  const role = SNAPSHOT_ROLE;
  return [
    ...Object.entries(s.sysctl)
      .filter((e): e is [string, string] => e[1] !== null)
      .map(([key, value]): PlannedCheck => ({
        kind: "sysctl",
        key,
        expected: value,
        role,
        message: `${key} was not restored to its original ${value}`,
      })),
    ...Object.entries(s.files).map(([path, content]): PlannedCheck => ({
      kind: "file",
      path,
      expected: content,
      role,
      message:
        content === null
          ? `${path} did not exist before provision and is still there`
          : `${path} was not restored to its original content`,
    })),
    {
      kind: "file",
      path: SNAPSHOT_PATH,
      expected: null,
      role,
      message: `${SNAPSHOT_PATH} should be gone after a complete rollback`,
    },
  ];
}
