import { createHash } from "node:crypto";
import type { ResolvedHost } from "../resolve.js";
import type { Facts } from "../role.js";
import { changeTarget, type PlannedChange } from "../plan.js";
import { SNAPSHOT_PATH } from "../snapshot.js";
import { foldHosts } from "../output/hostList.js";
import { plural } from "../output/words.js";
import type { SavedPlan } from "./planFile.js";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * What a host's plan depends on besides its facts. Over the resolved values, not the inventory's
 * bytes: a reformatted inventory or a new comment keeps a plan valid, a changed value does not.
 */
export function configDigest(host: ResolvedHost): string {
  const c = host.connection;
  return sha256(
    JSON.stringify({
      roles: host.roles.map((r) => ({ role: r.role.name, params: r.params })),
      become: host.become,
      address: { kind: c.kind, host: c.host, port: c.port ?? null },
    }),
  );
}

export function hostsDigest(configDigests: string[]): string {
  return sha256(configDigests.join("\n"));
}

export function playbookDigest(bytes: Buffer | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface CurrentConfig {
  provision: string;
  playbookDigest: string;
  /** The hosts the saved plan's selection picks now, each with its configDigest. */
  hosts: Array<{ name: string; configDigest: string }>;
}

/** Every reason the saved plan no longer describes what `run` would do, all at once; empty when it still does. */
export function staleReasons(file: string, saved: SavedPlan, now: CurrentConfig): string[] {
  const reasons: string[] = [];
  if (saved.provision !== now.provision)
    reasons.push(
      `${file} was made by provision ${saved.provision}; this is provision ${now.provision}, which may plan differently. Make the plan again with this version.`,
    );
  if (saved.digests.playbook !== now.playbookDigest)
    reasons.push(`the playbook ${saved.playbook} changed since the plan was made.`);
  const current = new Map(now.hosts.map((h) => [h.name, h.configDigest]));
  const savedNames = new Set(saved.hosts.map((h) => h.host));
  const added = now.hosts.filter((h) => !savedNames.has(h.name)).map((h) => h.name);
  const removed = saved.hosts.filter((h) => !current.has(h.host)).map((h) => h.host);
  const changed = saved.hosts
    .filter((h) => current.has(h.host) && current.get(h.host) !== h.configDigest)
    .map((h) => h.host);
  if (added.length > 0) reasons.push(`${plural(added.length, "host")} not in the plan: ${foldHosts(added)}.`);
  if (removed.length > 0)
    reasons.push(`${plural(removed.length, "planned host")} no longer selected: ${foldHosts(removed)}.`);
  if (changed.length > 0)
    reasons.push(
      `the inventory or playbook now gives ${foldHosts(changed)} other roles, params or address than the plan (provision explain -i … shows the values now).`,
    );
  return reasons;
}

const DAY_MS = 24 * 3600 * 1000;

/** A warning for a plan older than a day: its facts are checked again, but reviewers saw an old picture. */
export function ageWarning(createdAt: string, now: Date): string | null {
  const age = now.getTime() - Date.parse(createdAt);
  if (!(age > DAY_MS)) return null;
  const hours = Math.floor(age / 3600_000);
  const text = hours < 48 ? plural(hours, "hour") : plural(Math.floor(hours / 24), "day");
  return `this plan was made ${text} ago (${createdAt}); each host's facts are checked again before it is changed, but a fresh plan shows reviewers what the hosts look like today.`;
}

const MAX_SHOWN = 80;

function shown(value: unknown): string {
  if (value === null || value === undefined) return "absent";
  const text = JSON.stringify(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 1)}…` : text;
}

function differingKeys<T>(a: Record<string, T> = {}, b: Record<string, T> = {}): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null));
}

/** What differs between the facts a plan rested on and the facts read now, one line per fact. */
export function factsDifference(before: Facts, now: Facts): string[] {
  const lines: string[] = [];
  for (const key of differingKeys(before.sysctl, now.sysctl))
    lines.push(`sysctl ${key}: ${shown(before.sysctl[key])} → ${shown(now.sysctl[key])}`);
  for (const path of differingKeys(before.files, now.files)) {
    const was = before.files[path] ?? null;
    const is = now.files[path] ?? null;
    const what =
      was === null ? "created" : is === null ? "deleted" : `edited (${lineCount(was)} → ${lineCount(is)} lines)`;
    lines.push(`file ${path}: ${what}`);
  }
  if (JSON.stringify(before.listeningPorts) !== JSON.stringify(now.listeningPorts))
    lines.push(`listening ports: ${portsText(before.listeningPorts)} → ${portsText(now.listeningPorts)}`);
  for (const key of differingKeys(before.probes, now.probes))
    lines.push(...leafDifferences(key, before.probes?.[key], now.probes?.[key]));
  return lines;
}

/** `path: old → new` for each differing leaf of two JSON values (a probe's answer), so a pid that moved reads as such. */
function leafDifferences(path: string, a: unknown, b: unknown): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
  if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b))
    return JSON.stringify(a) === JSON.stringify(b) ? [] : [`${path}: ${shown(a)} → ${shown(b)}`];
  if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) return [`${path}: ${shown(a)} → ${shown(b)}`];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.flatMap((k) => leafDifferences(Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`, a[k], b[k]));
}

/**
 * How the plan made now differs from the reviewed one, change by change (by role and target): what
 * decides a refusal, where factsDifference also lists facts that moved without mattering.
 */
export function planDifference(reviewed: PlannedChange[], now: PlannedChange[]): string[] {
  const id = (c: PlannedChange) => `${c.role} ${c.kind} ${changeTarget(c)}`;
  const nowById = new Map(now.map((c) => [id(c), c]));
  const reviewedIds = new Set(reviewed.map(id));
  const lines: string[] = [];
  for (const r of reviewed) {
    const n = nowById.get(id(r));
    if (!n) lines.push(`no longer planned: ${describeChange(r)}`);
    else if (JSON.stringify(n) !== JSON.stringify(r)) lines.push(changedChange(r, n));
  }
  for (const n of now) if (!reviewedIds.has(id(n))) lines.push(`newly planned: ${describeChange(n)}`);
  return lines;
}

function describeChange(c: PlannedChange): string {
  return c.kind === "sysctl" ? `${c.key} ${c.before ?? "absent"} → ${c.after}` : `${c.kind} ${changeTarget(c)}`;
}

function changedChange(r: PlannedChange, n: PlannedChange): string {
  if (r.kind === "sysctl" && n.kind === "sysctl")
    return `${r.key}: reviewed ${r.before ?? "absent"} → ${r.after}, now ${n.before ?? "absent"} → ${n.after}`;
  if (r.kind === "file" && n.kind === "file")
    return r.before !== n.before || r.beforeSha256 !== n.beforeSha256
      ? `${r.path}: its content on the host changed since review`
      : `${r.path}: the content to write differs from the reviewed`;
  return `${describeChange(r)}: differs from the reviewed`;
}

function lineCount(text: string): number {
  return text === "" ? 0 : text.replace(/\n$/, "").split("\n").length;
}

function portsText(ports: Facts["listeningPorts"]): string {
  if (!ports) return "unknown";
  return `tcp ${ports.tcp.join(",") || "none"}; udp ${ports.udp.join(",") || "none"}`;
}

const MAX_FACTS_LISTED = 5;

/** Why `run --plan` refuses a host: how its plan changed since review, and which facts moved. */
export function refusal(reviewed: PlannedChange[], now: PlannedChange[], factsThen: Facts, factsNow: Facts): string {
  const all = planDifference(reviewed, now);
  // The snapshot records originals, so it differs whenever a value did: named only when nothing else is.
  const other = all.filter((line) => !line.includes(SNAPSHOT_PATH));
  const changes = other.length > 0 ? other : all;
  const facts = factsDifference(factsThen, factsNow);
  const listed = facts.slice(0, MAX_FACTS_LISTED).join("; ");
  const more = facts.length > MAX_FACTS_LISTED ? `; and ${facts.length - MAX_FACTS_LISTED} more` : "";
  const why =
    facts.length > 0
      ? ` (facts that differ: ${listed}${more})`
      : " (the facts read are the same: its SSH address may have changed)";
  return `its plan changed since review: ${changes.join("; ")}${why}. Nothing was applied to it; make and review a new plan for it.`;
}
