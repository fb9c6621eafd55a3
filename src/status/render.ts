import { foldHostsWithin, hostsTitle } from "../output/hostList.js";
import { groupOutcomes } from "../output/outcomes.js";
import { plainStyle, type Style } from "../output/format.js";
import { plural, thousands } from "../output/words.js";
import type { HostStatus } from "./read.js";
import { VERDICT_RANK, WALL_IDS, WALL_INFO, type Thresholds, type Verdict, type Wall, type WallId } from "./walls.js";

/** Up to this many hosts, each gets its full table; above it, the fleet view. */
export const DETAILED_HOSTS = 3;
const HOSTS_CHARS = 48;
const CONSUMERS_SHOWN = 3;

export function renderStatus(statuses: readonly HostStatus[], style: Style = plainStyle): string {
  const read = statuses.filter((s) => s.verdict !== "error");
  const lines = [summaryLine(statuses), ""];
  if (read.length > 0 && read.length <= DETAILED_HOSTS) for (const s of read) lines.push(...hostTable(s, style), "");
  else if (read.length > 0) lines.push(...fleetView(read, style), "");
  lines.push(...errorLines(statuses, style));
  while (lines[lines.length - 1] === "") lines.pop();
  return `${lines.join("\n")}\n`;
}

export function summaryLine(statuses: readonly HostStatus[]): string {
  const count = (v: HostStatus["verdict"]) => statuses.filter((s) => s.verdict === v).length;
  const windows = statuses.flatMap((s) => (s.windowSeconds === null ? [] : [s.windowSeconds]));
  const window = windows.length > 0 ? `, counters sampled over ${Math.min(...windows).toFixed(1)} s` : "";
  const parts = [
    `${thousands(count("critical"))} critical`,
    `${thousands(count("warn"))} warn`,
    `${thousands(count("ok"))} ok`,
  ];
  if (count("error") > 0) parts.push(`${thousands(count("error"))} not read`);
  return `status of ${plural(statuses.length, "host")}${window}: ${parts.join(", ")}`;
}

function paint(verdict: Verdict | "error", text: string, style: Style): string {
  return verdict === "critical" || verdict === "error" ? style.red(text) : verdict === "warn" ? style.bold(text) : text;
}

/** `901/1,000 (90.1%)`, `901/?`, `—`. */
export function usage(w: Pick<Wall, "used" | "limit" | "percent">): string {
  if (w.used === null) return "—";
  const limit = w.limit === null ? "?" : thousands(w.limit);
  return `${thousands(w.used)}/${limit}${w.percent === null ? "" : ` (${w.percent}%)`}`;
}

function consumerText(c: Wall["consumers"][number]): string {
  const amount =
    (c.limit === null ? thousands(c.used) : `${thousands(c.used)}/${thousands(c.limit)}`) +
    (c.unit ? ` ${c.unit}` : "");
  return `${c.name} ${amount}${c.percent === null ? "" : ` (${c.percent}%)`}${c.detail ? `, ${c.detail}` : ""}`;
}

/** What a wall's line says after its numbers: the reason it is raised, else its top consumer. */
function wallStory(w: Wall): string {
  const top = w.consumers[0];
  if (w.reason) return w.reason;
  if (w.wall === "keepalive") return w.used ? `of ${plural(w.limit ?? 0, "established connection")}` : "";
  return top ? consumerText(top) : (w.note ?? "");
}

function hostTable(s: HostStatus, style: Style): string[] {
  const closest = s.walls.find((w) => w.wall === s.closest);
  const head = closest
    ? `closest wall: ${closest.wall} ${closest.percent === null ? "" : `${closest.percent}% `}(${closest.verdict})`
    : "no wall in sight";
  const lines = [`${style.bold(s.host)}  ${paint(s.verdict, head, style)}`];
  const order = [...s.walls].sort(byConcern);
  const width = Math.max(...order.map((w) => w.wall.length));
  const usageWidth = Math.max(...order.map((w) => usage(w).length));
  for (const w of order) {
    const verdict = paint(w.verdict, w.verdict.padEnd(8), style);
    lines.push(`  ${w.wall.padEnd(width)}  ${verdict}  ${usage(w).padEnd(usageWidth)}  ${wallStory(w)}`.trimEnd());
    const more = w.reason ? w.consumers.slice(0, CONSUMERS_SHOWN) : w.consumers.slice(1, CONSUMERS_SHOWN);
    for (const c of more) lines.push(`  ${"".padEnd(width + 14 + usageWidth)}${consumerText(c)}`);
    const indent = `  ${"".padEnd(width + 14 + usageWidth)}`;
    if (w.note && (w.consumers.length > 0 || w.reason || w.wall === "keepalive"))
      lines.push(`${indent}${style.dim(`note: ${w.note}`)}`);
    if (w.verdict !== "ok") lines.push(`${indent}${style.dim(roleHint(w.wall))}`);
  }
  return lines;
}

/** `the wall: …; moved by role fd-limits (provision explain fd-limits)`. */
function roleHint(wall: WallId): string {
  const { role, what } = WALL_INFO[wall];
  return `${what}; moved by role ${role} (provision explain ${role})`;
}

/** Critical before warn before ok; then the fuller wall; hints last among equals. */
function byConcern(a: Wall, b: Wall): number {
  return (
    VERDICT_RANK[b.verdict] - VERDICT_RANK[a.verdict] ||
    Number(a.hint ?? false) - Number(b.hint ?? false) ||
    (b.percent ?? -1) - (a.percent ?? -1) ||
    WALL_IDS.indexOf(a.wall) - WALL_IDS.indexOf(b.wall)
  );
}

interface WallGroup {
  wall: WallId;
  verdict: Verdict;
  hosts: string[];
  worst: { host: string; wall: Wall };
}

/** One line per wall and verdict, worst first, hosts folded; the worst host's numbers stand for the group. */
export function wallGroups(statuses: readonly HostStatus[]): WallGroup[] {
  const groups = new Map<string, WallGroup>();
  for (const s of statuses) {
    for (const w of s.walls) {
      if (w.used === null && w.verdict === "ok") continue;
      const key = `${w.wall}\0${w.verdict}`;
      const g = groups.get(key);
      if (!g) groups.set(key, { wall: w.wall, verdict: w.verdict, hosts: [s.host], worst: { host: s.host, wall: w } });
      else {
        g.hosts.push(s.host);
        if (fullness(w) > fullness(g.worst.wall)) g.worst = { host: s.host, wall: w };
      }
    }
  }
  return [...groups.values()].sort((a, b) => byConcern(a.worst.wall, b.worst.wall));
}

/** Unrounded, so of two hosts at "95.8%" the fuller one stands for the group. */
function fullness(w: Wall): number {
  return w.used !== null && w.limit !== null && w.limit > 0 ? w.used / w.limit : (w.percent ?? -1) / 100;
}

function fleetView(statuses: readonly HostStatus[], style: Style): string[] {
  const groups = wallGroups(statuses);
  const rows = groups.map((g) => {
    const hosts =
      g.hosts.length === statuses.length ? `all ${plural(g.hosts.length, "host")}` : hostsTitleWithin(g.hosts);
    const lead = g.hosts.length > 1 ? (g.verdict === "ok" ? "highest " : "worst ") + `${g.worst.host}: ` : "";
    const story = wallStory(g.worst.wall);
    const role = g.verdict === "ok" ? "" : `${story === "" ? "" : " · "}role ${WALL_INFO[g.wall].role}`;
    return { g, cells: [g.verdict, g.wall, hosts, `${lead}${usage(g.worst.wall)}`, `${story}${role}`] };
  });
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r.cells[i]!.length)));
  const lines = rows.map(({ g, cells }) => {
    const padded = cells.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c));
    padded[0] = paint(g.verdict, padded[0]!, style);
    return padded.join("  ").trimEnd();
  });
  const closest = closestPerHost(statuses);
  if (closest) lines.push("", style.dim(closest));
  return lines;
}

function hostsTitleWithin(hosts: readonly string[]): string {
  return hosts.length === 1 ? hosts[0]! : `${foldHostsWithin(hosts, HOSTS_CHARS)} (${plural(hosts.length, "host")})`;
}

/** `closest wall: ephemeral-ports on h[1:40] (40 hosts), open-files on h[41:50] (10 hosts)`. */
function closestPerHost(statuses: readonly HostStatus[]): string | null {
  const by = new Map<string, string[]>();
  for (const s of statuses) if (s.closest) by.set(s.closest, [...(by.get(s.closest) ?? []), s.host]);
  if (by.size === 0) return null;
  const parts = [...by.entries()]
    .sort((a, b) => b[1].length - a[1].length)
    .map(([wall, hosts]) => `${wall} on ${hostsTitleWithin(hosts)}`);
  return `closest wall: ${parts.join(", ")}`;
}

function errorLines(statuses: readonly HostStatus[], style: Style): string[] {
  const outcomes = statuses
    .filter((s) => s.error)
    .map((s) => ({
      host: s.host,
      item: s,
      kind: s.error!.kind,
      text: `${s.error!.kind}: ${s.error!.message}`,
      perHostDetails: true,
    }));
  return groupOutcomes(outcomes).map((g) => style.red(`${hostsTitle(g.hosts)}: ${g.text}`));
}

/** `--json`: everything the text shows and more (every consumer kept, counters, notes). */
export function statusJson(statuses: readonly HostStatus[], thresholds: Thresholds): string {
  const count = (v: HostStatus["verdict"]) => statuses.filter((s) => s.verdict === v).length;
  return JSON.stringify(
    {
      command: "status",
      thresholds,
      summary: {
        hosts: statuses.length,
        critical: count("critical"),
        warn: count("warn"),
        ok: count("ok"),
        error: count("error"),
      },
      hosts: statuses.map((s) => ({
        host: s.host,
        verdict: s.verdict,
        ...(s.error ? { error: s.error } : {}),
        ...(s.windowSeconds !== null ? { windowSeconds: s.windowSeconds } : {}),
        closest: s.closest,
        walls: s.walls,
      })),
    },
    null,
    2,
  );
}
