import { isIP } from "node:net";

/** A host name pattern that cannot be expanded; `problem` and `fix` are sentences without the final period. */
export class HostPatternError extends Error {
  constructor(
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${problem}. ${fix}.`);
    this.name = "HostPatternError";
  }
}

/** Guards against a typo like `[1:1000000]` silently creating a huge inventory. */
export const MAX_EXPANDED_HOSTS = 100_000;

// Ansible walks Python's string.ascii_letters, so `[x:B]` runs x..z and then A..B.
const ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** True when the name contains range brackets and must go through `expandHostPattern`. */
export function hasHostRange(pattern: string): boolean {
  return pattern.includes("[") || pattern.includes("]");
}

/**
 * Expands Ansible host ranges (`web[01:20].example.com`, `db-[a:f]`, `[1:10:2]`) in order;
 * several ranges expand as a cartesian product with the leftmost range outermost.
 */
export function expandHostPattern(pattern: string): string[] {
  if (pattern.trim() === "") {
    throw new HostPatternError("The host name is empty", "Give the host a name");
  }
  const segments = splitIntoSegments(pattern);
  rejectExplosion(pattern, segments);
  return cartesianProduct(segments);
}

/** Each segment is the list of alternatives at that position: one for literal text, many for a range. */
type Segment = string[];

function splitIntoSegments(pattern: string): Segment[] {
  const segments: Segment[] = [];
  let cursor = 0;
  while (cursor < pattern.length) {
    const open = pattern.indexOf("[", cursor);
    const literal = pattern.slice(cursor, open === -1 ? pattern.length : open);
    rejectStrayClosingBracket(pattern, literal);
    if (literal !== "") segments.push([literal]);
    if (open === -1) break;
    const close = findClosingBracket(pattern, open);
    segments.push(expandRange(pattern, pattern.slice(open + 1, close)));
    cursor = close + 1;
  }
  return segments;
}

function rejectStrayClosingBracket(pattern: string, literal: string): void {
  if (literal.includes("]")) {
    throw new HostPatternError(
      `"${pattern}" has a "]" without a matching "["`,
      'Remove the "]" or open the range with "[", e.g. web[01:20]',
    );
  }
}

function findClosingBracket(pattern: string, open: number): number {
  const close = pattern.indexOf("]", open);
  const nestedOpen = pattern.indexOf("[", open + 1);
  if (close === -1) {
    throw new HostPatternError(
      `"${pattern}" has a range that is never closed`,
      'Close the range with "]", e.g. web[01:20]',
    );
  }
  if (nestedOpen !== -1 && nestedOpen < close) {
    throw new HostPatternError(
      `"${pattern}" has a range nested inside another range`,
      "Write ranges side by side instead, e.g. rack[1:2]-node[01:08]",
    );
  }
  return close;
}

function expandRange(pattern: string, body: string): string[] {
  if (looksLikeAddress(body)) {
    throw new HostPatternError(
      `"${pattern}" brackets an address instead of a range`,
      "Host names in YAML inventory can't be bracketed addresses; name the host and set ansible_host",
    );
  }
  const parts = body.split(":");
  if (parts.length < 2 || parts.length > 3) {
    throw new HostPatternError(
      `"[${body}]" in "${pattern}" is not a range`,
      "Write a range as [start:end] or [start:end:step], e.g. web[01:20] or db-[a:f]",
    );
  }
  const [start = "", end = "", step] = parts;
  const stride = parseStride(pattern, body, step);
  if (end === "") {
    throw new HostPatternError(`"[${body}]" in "${pattern}" has no end`, "Give both bounds, e.g. [1:9]");
  }
  return expandBounds(pattern, body, start, end, stride);
}

function looksLikeAddress(body: string): boolean {
  const colons = body.split(":").length - 1;
  return isIP(body) !== 0 || body.includes("::") || colons > 2;
}

function parseStride(pattern: string, body: string, step: string | undefined): bigint {
  if (step === undefined) return 1n;
  if (/^\d+$/.test(step) && BigInt(step) > 0n) return BigInt(step);
  throw new HostPatternError(
    `"[${body}]" in "${pattern}" has step "${step}", which is not a positive whole number`,
    "Use a step of 1 or more, e.g. [1:10:2]",
  );
}

function expandBounds(pattern: string, body: string, start: string, end: string, stride: bigint): string[] {
  const isDigits = (s: string): boolean => /^\d+$/.test(s);
  const isLetters = (s: string): boolean => /^[A-Za-z]+$/.test(s);
  // Ansible treats a missing start as 0, so `[:3]` is 0..3.
  if (start === "" && isDigits(end)) return numericRange(pattern, body, "0", end, stride);
  if (isDigits(start) && isDigits(end)) return numericRange(pattern, body, start, end, stride);
  if (isLetters(start) && isLetters(end)) return letterRange(pattern, body, start, end, stride);
  throw new HostPatternError(
    describeBadBounds(pattern, body, start, end),
    "Use two numbers, e.g. [1:9], or two single letters, e.g. [a:f]",
  );
}

function describeBadBounds(pattern: string, body: string, start: string, end: string): string {
  const where = `"[${body}]" in "${pattern}"`;
  if (start === "") return `${where} has no start`;
  const kinds = [start, end].map((b) => (/^\d+$/.test(b) ? "number" : /^[A-Za-z]+$/.test(b) ? "letter" : "other"));
  if (kinds.includes("number") && kinds.includes("letter")) return `${where} mixes a number and a letter`;
  return `${where} has a bound that is neither a number nor a letter`;
}

function numericRange(pattern: string, body: string, start: string, end: string, stride: bigint): string[] {
  const width = paddingWidth(pattern, body, start, end);
  const from = BigInt(start);
  const to = BigInt(end);
  rejectDescending(pattern, body, from > to, `${end}:${start}`);
  rejectOversizedRange(pattern, (to - from) / stride + 1n);
  const values: string[] = [];
  for (let n = from; n <= to; n += stride) values.push(n.toString().padStart(width, "0"));
  return values;
}

/** Ansible keeps zero padding only when the start has a leading zero, and then both bounds must be that wide. */
function paddingWidth(pattern: string, body: string, start: string, end: string): number {
  if (!(start.startsWith("0") && start.length > 1)) return 0;
  if (end.length !== start.length) {
    const width = Math.max(start.length, end.length);
    throw new HostPatternError(
      `"[${body}]" in "${pattern}" is zero-padded to ${start.length} digits but its end has ${end.length}`,
      `Write both bounds with the same number of digits, e.g. [${start.padStart(width, "0")}:${end.padStart(width, "0")}]`,
    );
  }
  return start.length;
}

function letterRange(pattern: string, body: string, start: string, end: string, stride: bigint): string[] {
  if (start.length > 1 || end.length > 1) {
    throw new HostPatternError(
      `"[${body}]" in "${pattern}" has a multi-letter bound`,
      "Letter ranges step one letter at a time; use single letters, e.g. [a:f], or two ranges side by side, e.g. [a:b][a:z]",
    );
  }
  const from = ASCII_LETTERS.indexOf(start);
  const to = ASCII_LETTERS.indexOf(end);
  rejectDescending(pattern, body, from > to, `${end}:${start}`);
  const letters: string[] = [];
  for (let i = from; i <= to; i += Number(stride)) letters.push(ASCII_LETTERS.charAt(i));
  return letters;
}

function rejectDescending(pattern: string, body: string, descending: boolean, swapped: string): void {
  if (descending) {
    throw new HostPatternError(
      `"[${body}]" in "${pattern}" starts after it ends`,
      `Put the smaller bound first, e.g. [${swapped}]`,
    );
  }
}

function rejectOversizedRange(pattern: string, count: bigint): void {
  if (count > BigInt(MAX_EXPANDED_HOSTS)) throw explosionError(pattern);
}

function rejectExplosion(pattern: string, segments: Segment[]): void {
  let total = 1;
  for (const segment of segments) {
    total *= segment.length;
    if (total > MAX_EXPANDED_HOSTS) throw explosionError(pattern);
  }
}

function explosionError(pattern: string): HostPatternError {
  return new HostPatternError(
    `"${pattern}" would expand to more than ${MAX_EXPANDED_HOSTS} host names`,
    "Split it into several smaller ranges, or check the bounds for a typo",
  );
}

function cartesianProduct(segments: Segment[]): string[] {
  let names = [""];
  for (const alternatives of segments) {
    names = names.flatMap((prefix) => alternatives.map((alternative) => prefix + alternative));
  }
  return names;
}
