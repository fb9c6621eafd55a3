import type { HostReport } from "../report.js";
import { changeTarget, checkTarget, type HostPlan, type PlannedChange } from "../plan.js";
import type { CheckResult } from "../verify.js";
import { SNAPSHOT_ROLE } from "../snapshot.js";
import { fileDiff } from "../diff.js";
import { plural } from "./words.js";
import { foldHosts, hostsTitle } from "./hostList.js";
import { groupOutcomes, type Outcome, type OutcomeGroup } from "./outcomes.js";
import { compactValues, renderShapes, shapeKey, shapeOf, type Shape } from "./details.js";
import {
  cellCode,
  detailsBlock,
  fitMarkdown,
  type MarkdownBlock,
  type MarkdownLimits,
  type MarkdownSection,
} from "./markdown.js";

export type { MarkdownLimits } from "./markdown.js";

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

type PlanNote = HostPlan["notes"][number];

/** What the plan output shows for a group of hosts: their changes and notes, per-host details folded. */
export interface ShownPlan {
  hosts: string[];
  changes: PlannedChange[];
  notes: PlanNote[];
}

/**
 * Hosts whose plans are alike are shown once: the same changes (targets, new values, file
 * content, commands) in the same order, differing only in live values and in notes that differ
 * only in per-host details (numbers, addresses, …). The group shows those folded, as failures do
 * (`net.core.somaxconn: [1001:1200] → 65535`). A file whose old content differs is another diff,
 * so another group. Rendering only.
 */
export function groupAlikePlans(reports: HostReport[]): ShownPlan[] {
  const groups = new Map<string, { hosts: string[]; plans: HostPlan[]; notes: Shape[][] }>();
  for (const r of reports) {
    if (!r.plan || r.error) continue;
    const { changes } = r.plan;
    // Notes explain a change, so they are shown (and keyed) only for hosts with changes: a per-host
    // finding must not be shown for hosts that don't have it, and unchanged hosts stay one line.
    const notes = changes.length > 0 ? r.plan.notes : [];
    const shapes = notes.map((n) => shapeOf(n.text, r.host));
    const key = JSON.stringify([changes.map(alikeKey), notes.map((n, i) => [n.role, shapeKey(shapes[i]!)])]);
    const g = groups.get(key);
    if (g) {
      g.hosts.push(r.host);
      g.plans.push(r.plan);
      g.notes.push(shapes);
    } else groups.set(key, { hosts: [r.host], plans: [r.plan], notes: [shapes] });
  }
  return [...groups.values()].map(({ hosts, plans, notes }) => {
    const first = plans[0]!;
    return {
      hosts,
      changes: first.changes.map((c, i) =>
        c.kind === "sysctl" ? { ...c, before: foldLive(plans.map((p) => liveValue(p.changes[i]!))) } : c,
      ),
      notes: (first.changes.length > 0 ? first.notes : []).map((n, i) => ({
        role: n.role,
        text: renderShapes(notes.map((shapes) => shapes[i]!)),
      })),
    };
  });
}

/** A change as it must be the same on alike hosts: all of it but a sysctl's live value. */
function alikeKey({ role, ...c }: PlannedChange): unknown {
  return [role, c.kind === "sysctl" ? { ...c, before: undefined } : c];
}

/** Alike plans have a sysctl change wherever the first has one. */
function liveValue(c: PlannedChange): string | null {
  return c.kind === "sysctl" ? c.before : null;
}

/** The live values of one sysctl on alike hosts, folded: `[1001:1200]`, `4096 {87380, 131072}`. */
function foldLive(values: Array<string | null>): string | null {
  if (values.every((v) => v === null)) return null;
  const shown = values.map((v) => v ?? "(absent)");
  const shapes = shown.map((v) => shapeOf(v, ""));
  const key = shapeKey(shapes[0]!);
  return shapes.every((s) => shapeKey(s) === key) ? renderShapes(shapes) : compactValues(shown);
}

/** `limits` bound the Markdown to one PR comment; text is never cut. */
export function renderPlan(
  reports: HostReport[],
  format: Format,
  style: Style = plainStyle,
  limits: MarkdownLimits = {},
): string {
  if (format === "markdown") return renderPlanMarkdown(reports, limits);
  const out: string[] = [];
  for (const { hosts, changes, notes } of groupAlikePlans(reports)) {
    const title = planTitle(hosts);
    if (changes.length === 0) {
      out.push(`${style.bold(title)}: no changes`);
      continue;
    }
    out.push(style.bold(`${title}: ${plural(changes.length, "change")}`));
    out.push(...changesText(changes, style), ...notesText(notes, style), "");
  }
  out.push(...renderErrors(reports, "text", style));
  out.push(planSummary(reports));
  return `${out.join("\n")}\n`;
}

/** A plan group's hosts, always with their count: `db01 (1 host)`. */
function planTitle(hosts: string[]): string {
  return `${foldHosts(hosts)} (${plural(hosts.length, "host")})`;
}

function changesText(changes: PlannedChange[], style: Style): string[] {
  const out: string[] = [];
  for (const [role, roleChanges] of byRole(changes)) {
    out.push(`  ${role}:`);
    for (const c of roleChanges.filter((c) => c.kind === "sysctl")) out.push(`    ${liveLine(c, style)}`);
    for (const c of roleChanges.filter((c) => c.kind === "command"))
      out.push(`    run: ${style.green(changeTarget(c))}  ${style.dim(`(${c.description})`)}`);
    for (const c of roleChanges.filter((c) => c.kind === "file")) {
      // The snapshot is bookkeeping, not configuration: one line instead of a JSON diff.
      if (c.role === SNAPSHOT_ROLE) out.push(`    ${style.dim(`${c.description} (${c.path})`)}`);
      else out.push(...diffLines(c).map((l) => `    ${colorDiffLine(l, style)}`));
    }
  }
  return out;
}

function changesMarkdown(changes: PlannedChange[]): string[] {
  const out: string[] = [];
  for (const [role, roleChanges] of byRole(changes)) {
    out.push("", `**${role}**`, "");
    const live = roleChanges.filter((c) => c.kind === "sysctl");
    if (live.length > 0) out.push("| key | live | new |", "|---|---|---|");
    for (const c of live)
      out.push(`| ${cellCode(c.key)} | ${cellCode(c.before ?? "(absent)")} | ${cellCode(c.after)} |`);
    for (const c of roleChanges.filter((c) => c.kind === "command"))
      out.push(`- run \`${changeTarget(c)}\` — ${c.description}`);
    for (const c of roleChanges.filter((c) => c.kind === "file")) {
      if (c.role === SNAPSHOT_ROLE) out.push(`- ${c.description} (\`${c.path}\`)`);
      else out.push("", "```diff", ...diffLines(c), "```");
    }
  }
  return out;
}

function byRole(changes: PlannedChange[]): Map<string, PlannedChange[]> {
  const roles = new Map<string, PlannedChange[]>();
  for (const c of changes) roles.set(c.role, [...(roles.get(c.role) ?? []), c]);
  return roles;
}

function diffLines(c: Extract<PlannedChange, { kind: "file" }>): string[] {
  return fileDiff(c.path, c.before, c.after).trimEnd().split("\n");
}

function notesText(notes: PlanNote[], style: Style): string[] {
  return notes.map((n) => style.dim(`  note (${n.role}): ${n.text}`));
}

function notesMarkdown(notes: PlanNote[]): string[] {
  return [...(notes.length > 0 ? [""] : []), ...notes.map((n) => `- _${n.role}_: ${n.text}`)];
}

/**
 * One PR comment: the summary first, then the errors, then each group of hosts with changes
 * collapsed (most hosts first), then the unchanged hosts; over the limit, whole groups are left
 * out from the least important, and the last line says where the full plan is.
 */
function renderPlanMarkdown(reports: HostReport[], limits: MarkdownLimits): string {
  const head = `### provision plan\n\n${planSummary(reports)}\n\n`;
  const groups = groupAlikePlans(reports);
  const withChanges = mostHostsFirst(groups.filter((g) => g.changes.length > 0));
  const unchanged = groups.filter((g) => g.changes.length === 0);
  const sections: MarkdownSection[] = [
    errorsMarkdown(reports),
    { heading: "", end: "", blocks: withChanges.map(planGroupMarkdown) },
    {
      heading: "",
      end: "\n",
      blocks: unchanged.map((g) => ({ hosts: g.hosts, text: `**${planTitle(g.hosts)}**: no changes\n` })),
    },
  ];
  return endOnce(fitMarkdown(head, sections, { command: "plan", hosts: reports.length }, limits));
}

function planGroupMarkdown({ hosts, changes, notes }: ShownPlan): MarkdownBlock {
  const body = [...changesMarkdown(changes), ...notesMarkdown(notes)].join("\n");
  return { hosts, text: detailsBlock(`${planTitle(hosts)}: ${plural(changes.length, "change")}`, body) };
}

function mostHostsFirst<T extends { hosts: readonly string[] }>(groups: T[]): T[] {
  return [...groups].sort((a, b) => b.hosts.length - a.hosts.length);
}

/** Blocks end in a blank line; the output ends in one newline. */
function endOnce(markdown: string): string {
  return `${markdown.trimEnd()}\n`;
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

/** A failure: hosts that failed the same way share it, whatever per-host details the message names. */
function failure(r: HostReport, text: string): Outcome<HostReport> {
  return { host: r.host, item: r, kind: r.status, text, perHostDetails: true };
}

/** A success: hosts share it only when it reads the same. */
function success(r: HostReport, text: string, kind: string = r.status): Outcome<HostReport> {
  return { host: r.host, item: r, kind, text, perHostDetails: false };
}

function errorGroups(reports: HostReport[], indent: string): Array<OutcomeGroup<HostReport>> {
  return groupOutcomes(reports.filter((r) => r.error).map((r) => failure(r, errorText(r.error!, indent))));
}

/**
 * Hosts that failed the same way are one entry: 50 hosts refused for one reason print it once,
 * and so do 50 refused by their own addresses (`by 198.18.0.[5:54]:22`).
 */
export function renderErrors(reports: HostReport[], format: Format, style: Style = plainStyle): string[] {
  const md = format === "markdown";
  const groups = errorGroups(reports, md ? "  " : "    ");
  if (groups.length === 0) return [];
  const out = [md ? "#### errors" : style.bold(style.red("errors:"))];
  for (const g of groups)
    out.push(
      md
        ? errorItemMarkdown(g).trimEnd()
        : `  ${hostsTitle(g.hosts)}: ${style.red(g.item.status.toUpperCase())}: ${g.text}`,
    );
  out.push("");
  return out;
}

function errorItemMarkdown(g: OutcomeGroup<HostReport>): string {
  return `- **${hostsTitle(g.hosts)}** (${g.item.status}): ${g.text}\n`;
}

function errorsMarkdown(reports: HostReport[]): MarkdownSection {
  const blocks = errorGroups(reports, "  ").map((g) => ({ hosts: g.hosts, text: errorItemMarkdown(g) }));
  return { heading: "#### errors\n", blocks, end: "\n" };
}

export function planSummary(reports: HostReport[]): string {
  const changed = reports.filter((r) => !r.error && r.status === "changed");
  const changes = changed.reduce((n, r) => n + (r.plan?.changes.length ?? 0), 0);
  const unchanged = reports.filter((r) => !r.error && r.status === "unchanged").length;
  const failed = reports.filter((r) => r.error).length;
  return `Plan: ${plural(changes, "change")} on ${plural(changed.length, "host")}, ${unchanged} unchanged, ${failed} failed.`;
}

/** One line per outcome: `web[01:48] (48 hosts): changed (3 applied), verified 12/12`. */
export function renderRunResult(reports: HostReport[], style: Style = plainStyle): string {
  const out = groupOutcomes(reports.map((r) => runOutcome(r, style))).map((g) => `${hostsTitle(g.hosts)}: ${g.text}`);
  const count = (s: string) => reports.filter((r) => r.status === s).length;
  out.push(
    `Run: ${count("changed")} changed, ${count("unchanged")} unchanged, ${count("failed")} failed, ${count("unreachable")} unreachable${count("not-reached") > 0 ? `, ${count("not-reached")} not reached` : ""}.`,
  );
  if (count("changed") === 0 && count("failed") === 0 && count("unreachable") === 0)
    out.push("Nothing to do: every host already matches.");
  return `${out.join("\n")}\n`;
}

function runOutcome(r: HostReport, style: Style): Outcome<HostReport> {
  if (r.error) return failure(r, `${style.red(r.status.toUpperCase())}: ${errorText(r.error, "  ")}`);
  if (r.status === "not-reached") return success(r, style.dim("not reached"));
  const applied = r.outcomes?.filter((o) => o.ok).length ?? 0;
  const verified = r.checks?.filter((c) => c.ok).length ?? 0;
  const total = r.checks?.length ?? 0;
  const what = r.status === "changed" ? style.green(`changed (${applied} applied)`) : "unchanged";
  return success(r, `${what}, verified ${verified}/${total}`);
}

/** `limits` bound the Markdown to one PR comment; text is never cut. */
export function renderVerify(
  reports: HostReport[],
  format: Format,
  style: Style = plainStyle,
  limits: MarkdownLimits = {},
): string {
  if (format === "markdown") return renderVerifyMarkdown(reports, limits);
  const out: string[] = [];
  for (const g of groupOutcomes(reports.map((r) => verifyOutcome(r, style)))) {
    const title = hostsTitle(g.hosts);
    out.push(`${isHostError(g.item) ? title : style.bold(title)}: ${g.text}`);
  }
  out.push("", verifySummary(reports));
  return `${out.join("\n")}\n`;
}

/** A host whose checks could not be read at all (unreachable, refused). */
function isHostError(r: HostReport): boolean {
  return r.error !== undefined && !r.checks;
}

function verifyOutcome(r: HostReport, style: Style): Outcome<HostReport> {
  if (isHostError(r)) return failure(r, `${style.red(r.status.toUpperCase())}: ${errorText(r.error!, "  ")}`);
  const results = r.checks ?? [];
  const mismatches = results.filter((c) => !c.ok);
  if (mismatches.length === 0) return success(r, style.green(`${results.length}/${results.length} ok`), "ok");
  const lines = [style.red(`${mismatches.length} of ${results.length} MISMATCH`)];
  for (const c of mismatches) {
    lines.push(
      `  ${style.red("MISMATCH")} ${checkTarget(c.check)}: expected ${expectedText(c)}, found ${actualText(c)} — ${c.check.message}`,
    );
    if (c.check.kind === "file" && c.check.expected !== null) {
      const drift = fileDiff(c.check.path, c.actual, c.check.expected).trimEnd().split("\n");
      lines.push(...drift.map((l) => `      ${colorDiffLine(l, style)}`));
    }
  }
  return failure(r, lines.join("\n"));
}

function expectedText(c: CheckResult): string {
  if (c.check.kind === "file") return c.check.expected === null ? "(absent)" : "(rendered content)";
  if (c.check.kind === "probe") return `${compareWord(c.check.compare)}${c.check.expected}`;
  return c.check.expected;
}

function actualText(c: CheckResult): string {
  if (c.check.kind !== "file") return (c.actual ?? "(absent)").replace(/\s+/g, " ");
  if (c.actual === null) return "(absent)";
  return c.ok ? "(same)" : "(differs)";
}

function verifySummary(reports: HostReport[]): string {
  const bad = reports.filter((r) => r.status !== "unchanged");
  const checks = reports.reduce((n, r) => n + (r.checks?.length ?? 0), 0);
  const mismatches = reports.reduce((n, r) => n + (r.checks?.filter((c) => !c.ok).length ?? 0), 0);
  return `Verify: ${checks - mismatches}/${checks} checks ok on ${reports.length - bad.length}/${reports.length} hosts; ${plural(mismatches, "mismatch")}, ${reports.filter(isHostError).length} host errors.`;
}

/**
 * One PR comment: the summary, the hosts that could not be checked, then each group of hosts
 * with mismatches (open, a table of its mismatches) and each group whose checks all passed
 * (collapsed, a table of its checks). Hosts whose checks differ only in per-host values share a group, the values listed in
 * its cells; over the limit, passing groups are left out first.
 */
function renderVerifyMarkdown(reports: HostReport[], limits: MarkdownLimits): string {
  const head = `### provision verify\n\n${verifySummary(reports)}\n\n`;
  const groups = groupOutcomes(reports.filter((r) => !isHostError(r)).map(verifyMarkdownOutcome));
  const block = (open: boolean) => (g: OutcomeGroup<HostReport>) => {
    const [summary, ...table] = g.text.split("\n");
    return { hosts: g.hosts, text: detailsBlock(`${hostsTitle(g.hosts)}: ${summary}`, table.join("\n"), open) };
  };
  const passed = (g: OutcomeGroup<HostReport>) => g.item.checks!.every((c) => c.ok);
  const sections: MarkdownSection[] = [
    errorsMarkdown(reports.filter(isHostError)),
    { heading: "", end: "", blocks: mostHostsFirst(groups.filter((g) => !passed(g))).map(block(true)) },
    { heading: "", end: "", blocks: mostHostsFirst(groups.filter(passed)).map(block(false)) },
  ];
  return endOnce(fitMarkdown(head, sections, { command: "verify", hosts: reports.length }, limits));
}

/**
 * The summary line, then a table: of the mismatches where there are any (the checks that passed
 * are counted), else of every check.
 */
function verifyMarkdownOutcome(r: HostReport): Outcome<HostReport> {
  const results = r.checks ?? [];
  const mismatches = results.filter((c) => !c.ok);
  const summary =
    mismatches.length === 0
      ? `${results.length}/${results.length} ok`
      : `${mismatches.length} of ${results.length} MISMATCH`;
  const shown = mismatches.length > 0 ? mismatches : results;
  const rows = shown.map(
    (c) =>
      `| ${cellCode(checkTarget(c.check))} | ${cellCode(expectedText(c))} | ${cellCode(actualText(c))} | ${c.ok ? "ok" : "**MISMATCH**"} |`,
  );
  const table = rows.length > 0 ? ["| check | expected | actual | |", "|---|---|---|---|", ...rows] : [];
  const passed = results.length - mismatches.length;
  const rest = mismatches.length > 0 && passed > 0 ? ["", `${plural(passed, "other check")} passed.`] : [];
  return failure(r, [summary, ...table, ...rest].join("\n"));
}

export function renderRollback(reports: HostReport[], style: Style = plainStyle): string {
  const out = groupOutcomes(reports.map((r) => rollbackOutcome(r, style))).map(
    (g) => `${hostsTitle(g.hosts)}: ${g.text}`,
  );
  const count = (s: string) => reports.filter((r) => r.status === s).length;
  out.push(
    `Rollback: ${count("changed")} restored, ${count("unchanged")} with nothing to roll back, ${count("failed") + count("unreachable")} failed.`,
  );
  return `${out.join("\n")}\n`;
}

function rollbackOutcome(r: HostReport, style: Style): Outcome<HostReport> {
  if (r.error) return failure(r, `${style.red(r.status.toUpperCase())}: ${r.error.message}`);
  if (r.status === "unchanged") return success(r, "no snapshot, nothing to roll back");
  const steps = r.outcomes?.length ?? 0;
  const ok = r.checks?.filter((c) => c.ok).length ?? 0;
  const restored = `${style.green(`restored (${plural(steps, "step")})`)}, verified ${ok}/${r.checks?.length ?? 0}`;
  return success(r, [restored, ...(r.outcomes ?? []).map((o) => `  ${style.dim(o.change.description)}`)].join("\n"));
}
