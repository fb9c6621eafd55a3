import type { HostReport } from "../report.js";
import { changeTarget, checkTarget, type PlannedChange } from "../plan.js";
import { SNAPSHOT_ROLE } from "../snapshot.js";
import { fileDiff } from "../diff.js";
import { plural } from "./words.js";
import { foldHosts } from "./hostList.js";

export type Format = "text" | "markdown";

export interface Style {
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  dim(s: string): string;
}

export const plainStyle: Style = { bold: (s) => s, red: (s) => s, green: (s) => s, dim: (s) => s };
export const ttyStyle: Style = {
  bold: (s) => `\x1b[1m${s}\x1b[0m`,
  red: (s) => `\x1b[31m${s}\x1b[0m`,
  green: (s) => `\x1b[32m${s}\x1b[0m`,
  dim: (s) => `\x1b[2m${s}\x1b[0m`,
};

/** Hosts whose changes are identical are shown once, so a 200-host plan reads like a 1-host plan. */
export function groupIdenticalPlans(reports: HostReport[]): Array<{ hosts: string[]; report: HostReport }> {
  const groups = new Map<string, { hosts: string[]; report: HostReport }>();
  for (const r of reports) {
    if (!r.plan || r.error) continue;
    // Notes explain a change, so they are shown (and keyed) only for hosts with changes: a per-host
    // finding must not be shown for hosts that don't have it, and unchanged hosts stay one line.
    const changes = r.plan.changes.map(({ role, ...c }) => [role, c]);
    const key = JSON.stringify(changes.length > 0 ? [changes, r.plan.notes] : []);
    const g = groups.get(key);
    if (g) g.hosts.push(r.host);
    else groups.set(key, { hosts: [r.host], report: r });
  }
  return [...groups.values()];
}

export function renderPlan(reports: HostReport[], format: Format, style: Style = plainStyle): string {
  const md = format === "markdown";
  const out: string[] = [];
  if (md) out.push("### provision plan", "");
  for (const { hosts, report } of groupIdenticalPlans(reports)) {
    const changes = report.plan!.changes;
    const title = `${foldHosts(hosts)} (${plural(hosts.length, "host")})`;
    if (changes.length === 0) {
      out.push(md ? `**${title}**: no changes` : `${style.bold(title)}: no changes`);
      continue;
    }
    out.push(
      md
        ? `#### ${title}: ${plural(changes.length, "change")}`
        : style.bold(`${title}: ${plural(changes.length, "change")}`),
    );
    for (const role of [...new Set(changes.map((c) => c.role))]) {
      const roleChanges = changes.filter((c) => c.role === role);
      out.push(md ? `\n**${role}**\n` : `  ${role}:`);
      const live = roleChanges.filter((c) => c.kind === "sysctl");
      if (live.length > 0) {
        if (md) out.push("| key | live | new |", "|---|---|---|");
        for (const c of live)
          out.push(
            md ? `| \`${c.key}\` | \`${c.before ?? "(absent)"}\` | \`${c.after}\` |` : `    ${liveLine(c, style)}`,
          );
      }
      for (const c of roleChanges.filter((c) => c.kind === "command")) {
        out.push(
          md
            ? `- run \`${changeTarget(c)}\` — ${c.description}`
            : `    run: ${style.green(changeTarget(c))}  ${style.dim(`(${c.description})`)}`,
        );
      }
      for (const c of roleChanges.filter((c) => c.kind === "file")) {
        if (c.role === SNAPSHOT_ROLE) {
          // Bookkeeping, not configuration: one line instead of a JSON diff.
          out.push(md ? `- ${c.description} (\`${c.path}\`)` : `    ${style.dim(`${c.description} (${c.path})`)}`);
          continue;
        }
        const diff = fileDiff(c.path, c.before, c.after);
        if (md) out.push("", "```diff", diff.trimEnd(), "```");
        else
          out.push(
            ...diff
              .trimEnd()
              .split("\n")
              .map((l) => `    ${colorDiffLine(l, style)}`),
          );
      }
    }
    out.push(...renderNotes(report, md, style));
    out.push("");
  }
  out.push(...renderErrors(reports, format, style));
  out.push(planSummary(reports));
  return `${out.join("\n")}\n`;
}

function renderNotes(report: HostReport, md: boolean, style: Style): string[] {
  const notes = report.plan!.notes;
  if (md) return [...(notes.length > 0 ? [""] : []), ...notes.map((n) => `- _${n.role}_: ${n.text}`)];
  return notes.map((n) => style.dim(`  note (${n.role}): ${n.text}`));
}

function compareWord(compare: "equal" | "at-least" | "at-most" | "includes" | "excludes"): string {
  return { equal: "", "at-least": ">= ", "at-most": "<= ", includes: "including ", excludes: "without " }[compare];
}

function liveLine(c: Extract<PlannedChange, { kind: "sysctl" }>, style: Style): string {
  return `${c.key}: ${style.red(c.before ?? "(absent)")} → ${style.green(c.after)}`;
}

function colorDiffLine(line: string, style: Style): string {
  if (line.startsWith("+++") || line.startsWith("---")) return style.bold(line);
  if (line.startsWith("+")) return style.green(line);
  if (line.startsWith("-")) return style.red(line);
  if (line.startsWith("@@")) return style.dim(line);
  return line;
}

/** A host's error: one line, or (several planning problems) a headline and a line per problem. */
function errorText(error: NonNullable<HostReport["error"]>, indent: string): string {
  const problems = error.problems ?? [];
  if (problems.length < 2) return error.message;
  return [`planning failed, ${problems.length} problems:`, ...problems.map((p) => `${indent}- ${p}`)].join("\n");
}

/** An error's hosts: `h[1:3] (3 hosts)`, or the one host's name. */
function hostsTitle(hosts: string[]): string {
  return hosts.length === 1 ? hosts[0]! : `${foldHosts(hosts)} (${plural(hosts.length, "host")})`;
}

/** Hosts that failed the same way are one entry: 50 hosts refused for one reason print it once. */
export function renderErrors(reports: HostReport[], format: Format, style: Style = plainStyle): string[] {
  const failed = reports.filter((r) => r.error);
  if (failed.length === 0) return [];
  const md = format === "markdown";
  const groups = new Map<string, { hosts: string[]; report: HostReport }>();
  for (const r of failed) {
    const key = JSON.stringify([r.status, r.error!.message, r.error!.problems ?? []]);
    const group = groups.get(key);
    if (group) group.hosts.push(r.host);
    else groups.set(key, { hosts: [r.host], report: r });
  }
  const out = [md ? "#### errors" : style.bold(style.red("errors:"))];
  for (const { hosts, report: r } of groups.values())
    out.push(
      md
        ? `- **${hostsTitle(hosts)}** (${r.status}): ${errorText(r.error!, "  ")}`
        : `  ${hostsTitle(hosts)}: ${style.red(r.status.toUpperCase())}: ${errorText(r.error!, "    ")}`,
    );
  out.push("");
  return out;
}

export function planSummary(reports: HostReport[]): string {
  const changed = reports.filter((r) => !r.error && r.status === "changed");
  const changes = changed.reduce((n, r) => n + (r.plan?.changes.length ?? 0), 0);
  const unchanged = reports.filter((r) => !r.error && r.status === "unchanged").length;
  const failed = reports.filter((r) => r.error).length;
  return `Plan: ${plural(changes, "change")} on ${plural(changed.length, "host")}, ${unchanged} unchanged, ${failed} failed.`;
}

export function renderRunResult(reports: HostReport[], style: Style = plainStyle): string {
  const out: string[] = [];
  for (const r of reports) {
    if (r.error) {
      out.push(`${r.host}: ${style.red(r.status.toUpperCase())}: ${errorText(r.error, "  ")}`);
      continue;
    }
    if (r.status === "not-reached") {
      out.push(`${r.host}: ${style.dim("not reached")}`);
      continue;
    }
    const applied = r.outcomes?.filter((o) => o.ok).length ?? 0;
    const verified = r.checks?.filter((c) => c.ok).length ?? 0;
    const total = r.checks?.length ?? 0;
    out.push(
      `${r.host}: ${r.status === "changed" ? style.green(`changed (${applied} applied)`) : "unchanged"}, verified ${verified}/${total}`,
    );
  }
  const count = (s: string) => reports.filter((r) => r.status === s).length;
  out.push(
    `Run: ${count("changed")} changed, ${count("unchanged")} unchanged, ${count("failed")} failed, ${count("unreachable")} unreachable${count("not-reached") > 0 ? `, ${count("not-reached")} not reached` : ""}.`,
  );
  if (count("changed") === 0 && count("failed") === 0 && count("unreachable") === 0)
    out.push("Nothing to do: every host already matches.");
  return `${out.join("\n")}\n`;
}

export function renderVerify(reports: HostReport[], format: Format, style: Style = plainStyle): string {
  const md = format === "markdown";
  const out: string[] = md
    ? ["### provision verify", "", "| host | check | expected | actual | |", "|---|---|---|---|---|"]
    : [];
  for (const r of reports) {
    if (r.error && !r.checks) {
      out.push(
        md
          ? `| ${r.host} | — | — | — | ${r.status}: ${r.error.message} |`
          : `${r.host}: ${style.red(r.status.toUpperCase())}: ${errorText(r.error, "  ")}`,
      );
      continue;
    }
    const results = r.checks ?? [];
    const okCount = results.filter((c) => c.ok).length;
    if (!md)
      out.push(
        `${style.bold(r.host)}: ${okCount === results.length ? style.green(`${okCount}/${results.length} ok`) : style.red(`${results.length - okCount} of ${results.length} MISMATCH`)}`,
      );
    for (const c of results) {
      const what = checkTarget(c.check);
      const expected =
        c.check.kind === "file"
          ? c.check.expected === null
            ? "(absent)"
            : "(rendered content)"
          : c.check.kind === "probe"
            ? `${compareWord(c.check.compare)}${c.check.expected}`
            : c.check.expected;
      const actual =
        c.check.kind !== "file"
          ? (c.actual ?? "(absent)")
          : c.actual === null
            ? "(absent)"
            : c.ok
              ? "(same)"
              : "(differs)";
      if (md)
        out.push(
          `| ${r.host} | \`${what}\` | \`${expected}\` | \`${actual.replace(/\s+/g, " ")}\` | ${c.ok ? "ok" : "**MISMATCH**"} |`,
        );
      else if (!c.ok) {
        out.push(
          `  ${style.red("MISMATCH")} ${what}: expected ${expected}, found ${actual.replace(/\s+/g, " ")} — ${c.check.message}`,
        );
        if (c.check.kind === "file" && c.check.expected !== null) {
          const drift = fileDiff(c.check.path, c.actual, c.check.expected).trimEnd().split("\n");
          out.push(...drift.map((l) => `      ${colorDiffLine(l, style)}`));
        }
      }
    }
  }
  const bad = reports.filter((r) => r.status !== "unchanged");
  const checks = reports.reduce((n, r) => n + (r.checks?.length ?? 0), 0);
  const mismatches = reports.reduce((n, r) => n + (r.checks?.filter((c) => !c.ok).length ?? 0), 0);
  out.push(
    "",
    `Verify: ${checks - mismatches}/${checks} checks ok on ${reports.length - bad.length}/${reports.length} hosts; ${plural(mismatches, "mismatch")}, ${reports.filter((r) => r.error && !r.checks).length} host errors.`,
  );
  return `${out.join("\n")}\n`;
}

export function renderRollback(reports: HostReport[], style: Style = plainStyle): string {
  const out: string[] = [];
  for (const r of reports) {
    if (r.error) {
      out.push(`${r.host}: ${style.red(r.status.toUpperCase())}: ${r.error.message}`);
      continue;
    }
    if (r.status === "unchanged") {
      out.push(`${r.host}: no snapshot, nothing to roll back`);
      continue;
    }
    const steps = r.outcomes?.length ?? 0;
    const ok = r.checks?.filter((c) => c.ok).length ?? 0;
    out.push(
      `${r.host}: ${style.green(`restored (${plural(steps, "step")})`)}, verified ${ok}/${r.checks?.length ?? 0}`,
    );
    for (const o of r.outcomes ?? []) out.push(`  ${style.dim(o.change.description)}`);
  }
  const count = (s: string) => reports.filter((r) => r.status === s).length;
  out.push(
    `Rollback: ${count("changed")} restored, ${count("unchanged")} with nothing to roll back, ${count("failed") + count("unreachable")} failed.`,
  );
  return `${out.join("\n")}\n`;
}
