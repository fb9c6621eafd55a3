import { isIP } from "node:net";
import { foldRuns } from "./hostList.js";

/**
 * Per-host details in a message: what differs between hosts that failed the same way. Two hosts
 * refused "by 198.18.0.5:22" and "by 198.18.0.6:22" failed alike; taking the details out lets
 * them share one line, which shows the details compactly (`by 198.18.0.[5:6]:22`).
 */
type DetailKind = "host" | "fingerprint" | "ip" | "id" | "duration" | "number";

/** A text cut into fixed parts and the details between them: literals.length === details.length + 1. */
export interface Shape {
  literals: string[];
  details: Array<{ kind: DetailKind; value: string }>;
}

const ANSI = String.raw`\x1b\[[0-9;]*m`;
const FINGERPRINT = String.raw`SHA256:[A-Za-z0-9+/]{43}=?|MD5(?::[0-9a-fA-F]{2}){16}|\b[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){15}\b`;
// Checked with isIP: the pattern also matches times (12:34:56) and words that happen to be hex.
const IPV6_CANDIDATE = String.raw`(?<![\w:.])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?:\.\d{1,3}){0,3}(?![\w:])`;
const IPV4 = String.raw`\b\d{1,3}(?:\.\d{1,3}){3}\b`;
const HEX_ID = String.raw`\b[0-9a-f]{12,}\b`;
// A duration as the roles write it (`4 min 11 s`, `2 h 5 min`, `300 s`) is one detail: hosts whose
// values differ in which units they need (`5 min` against `4 min 11 s`) are still alike.
const DURATION = String.raw`\b\d+ h(?: \d+ min)?(?: \d+ s)?\b|\b\d+ min(?: \d+ s)?\b|\b\d+ s\b`;
const NUMBER = String.raw`\b\d+(?:[.,]\d+)*\b`;

/** The text as fixed parts and details; `host` is the name of the host the text is about. */
export function shapeOf(text: string, host: string): Shape {
  const shape: Shape = { literals: [""], details: [] };
  addShape(shape, text, host, true);
  return shape;
}

function detailPattern(host: string, withIpv6: boolean): RegExp {
  const alternatives = [
    `(?<ansi>${ANSI})`,
    // A name like "h" or "1" is part of too many words to be recognised as the host's.
    ...(host.length >= 2 && !/^\d+$/.test(host) ? [`(?<host>(?<![\\w.-])${escapeRegExp(host)}(?![\\w-]))`] : []),
    `(?<fingerprint>${FINGERPRINT})`,
    ...(withIpv6 ? [`(?<ipv6>${IPV6_CANDIDATE})`] : []),
    `(?<ip>${IPV4})`,
    `(?<id>${HEX_ID})`,
    `(?<duration>${DURATION})`,
    `(?<number>${NUMBER})`,
  ];
  return new RegExp(alternatives.join("|"), "g");
}

function addShape(shape: Shape, text: string, host: string, withIpv6: boolean): void {
  let at = 0;
  for (const m of text.matchAll(detailPattern(host, withIpv6))) {
    appendLiteral(shape, text.slice(at, m.index));
    at = m.index + m[0].length;
    const kind = detailKindOf(m.groups ?? {});
    if (kind === "ansi") appendLiteral(shape, m[0]);
    else if (kind === "ipv6" && isIP(m[0]) !== 6) addShape(shape, m[0], host, false);
    else {
      shape.details.push({ kind: kind === "ipv6" ? "ip" : kind, value: m[0] });
      shape.literals.push("");
    }
  }
  appendLiteral(shape, text.slice(at));
}

function detailKindOf(groups: Record<string, string | undefined>): DetailKind | "ansi" | "ipv6" {
  const kinds = ["ansi", "host", "fingerprint", "ipv6", "ip", "id", "duration", "number"] as const;
  return kinds.find((k) => groups[k] !== undefined)!;
}

function appendLiteral(shape: Shape, text: string): void {
  shape.literals[shape.literals.length - 1] += text;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Texts of one shape share this key; so do equal texts. */
export function shapeKey(shape: Shape): string {
  return shape.literals.map((l, i) => (i === 0 ? l : `\0${shape.details[i - 1]!.kind}\0${l}`)).join("");
}

/** The common text of several shapes with one key, each detail as its values across them. */
export function renderShapes(shapes: readonly Shape[]): string {
  const first = shapes[0]!;
  return first.literals
    .map((literal, i) => (i === 0 ? literal : `${detailValues(shapes.map((s) => s.details[i - 1]!))}${literal}`))
    .join("");
}

function detailValues(details: ReadonlyArray<Shape["details"][number]>): string {
  const values = details.map((d) => d.value);
  if (details[0]!.kind !== "duration") return compactValues(values);
  const distinct = [...new Set(values)];
  // Durations in several units fold badly (`4 min [11:59] s`, `[5:7] min`, …): their span reads better.
  if (distinct.length <= SHOWN_VALUES || foldRuns(distinct).length === 1) return compactValues(values);
  const bySeconds = distinct.map((v) => [seconds(v), v] as const).sort((a, b) => a[0] - b[0]);
  return `[${bySeconds[0]![1]} … ${bySeconds.at(-1)![1]}]`;
}

function seconds(duration: string): number {
  const unit: Record<string, number> = { h: 3600, min: 60, s: 1 };
  return [...duration.matchAll(/(\d+) (h|min|s)\b/g)].reduce((n, m) => n + Number(m[1]) * unit[m[2]!]!, 0);
}

/** Shown values of a detail that differs between hosts; the rest are counted. */
const SHOWN_VALUES = 3;
/** A fingerprint in a list is recognised by its start; the whole one is in --json. */
const SHOWN_VALUE_CHARS = 24;

/**
 * The distinct values of one detail, short: the value when all are equal, a range when they fold
 * into one (`198.18.0.[5:9]`), else the first few and a count: `{4711, 4790, 5023, … 197 more}`.
 */
export function compactValues(values: readonly string[]): string {
  const distinct = [...new Set(values)];
  if (distinct.length === 1) return distinct[0]!;
  const runs = foldRuns(distinct);
  if (runs.length === 1) return runs[0]!.text;
  const shown = runs.slice(0, SHOWN_VALUES);
  const rest = distinct.length - shown.reduce((n, r) => n + r.count, 0);
  const texts = shown.map((r) =>
    r.text.length > SHOWN_VALUE_CHARS ? `${r.text.slice(0, SHOWN_VALUE_CHARS - 1)}…` : r.text,
  );
  return `{${texts.join(", ")}${rest > 0 ? `, … ${rest} more` : ""}}`;
}
