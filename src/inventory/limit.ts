import { isIPv6 } from "node:net";
import { editDistance } from "../config/suggest.js";
import { plural } from "../output/words.js";

export interface HostUniverse {
  /** Every host, in inventory order. */
  hosts: string[];
  /** Group name → all its hosts, including hosts of descendant groups; always has "all". */
  groups: Record<string, string[]>;
}

/** A host pattern that cannot be evaluated; `problem` and `fix` are sentences without the final period. */
export class LimitError extends Error {
  constructor(
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${problem}. ${fix}.`);
    this.name = "LimitError";
  }
}

type Operator = "union" | "intersect" | "exclude";

interface Term {
  operator: Operator;
  /** The term without its operator, e.g. `webservers[0:2]`. */
  body: string;
}

interface Subscript {
  start: number;
  /** Inclusive, as in Ansible; undefined selects the single host at `start`. */
  end?: number;
}

const MAX_SUGGESTIONS = 3;

/**
 * Selects hosts with an Ansible host pattern (`webservers:&staging:!phoenix`, `web*,~db\d+`,
 * `webservers[0:2]`). Plain terms are unioned (all hosts when there are none), then each `&` term
 * intersects and each `!` term subtracts. The result is in inventory order.
 */
export function selectHosts(pattern: string, universe: HostUniverse): string[] {
  const terms = splitTerms(pattern).map(parseTerm);
  // Match every term up front so a misspelt `!term` fails instead of silently excluding nothing.
  const matched = terms.map((term) => ({ term, hosts: new Set(matchTerm(term.body, universe)) }));
  const unions = matched.filter((m) => m.term.operator === "union");
  let selected = unions.length === 0 ? new Set(universe.hosts) : new Set(unions.flatMap((m) => [...m.hosts]));
  for (const { term, hosts } of matched) {
    if (term.operator === "intersect") selected = new Set([...selected].filter((h) => hosts.has(h)));
  }
  for (const { term, hosts } of matched) {
    if (term.operator === "exclude") selected = new Set([...selected].filter((h) => !hosts.has(h)));
  }
  return universe.hosts.filter((host) => selected.has(host));
}

function splitTerms(pattern: string): string[] {
  const trimmed = pattern.trim();
  const pieces = trimmed.includes(",") ? trimmed.split(",") : splitOnColons(trimmed);
  const terms = pieces.map((piece) => piece.trim()).filter((piece) => piece !== "");
  if (terms.length === 0) {
    throw new LimitError("The host pattern is empty", 'Name a host or group, or use "all"');
  }
  return terms;
}

/** Legacy `a:b:!c` form; like Ansible, a lone IPv6 address and colons inside `[...]` are not separators. */
function splitOnColons(pattern: string): string[] {
  if (isIPv6(pattern)) return [pattern];
  const pieces: string[] = [];
  let current = "";
  let bracketDepth = 0;
  for (const char of pattern) {
    if (char === "[") bracketDepth++;
    if (char === "]") bracketDepth = Math.max(0, bracketDepth - 1);
    if (char === ":" && bracketDepth === 0) {
      pieces.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  pieces.push(current);
  return pieces;
}

function parseTerm(raw: string): Term {
  const operator: Operator = raw.startsWith("!") ? "exclude" : raw.startsWith("&") ? "intersect" : "union";
  const body = (operator === "union" ? raw : raw.slice(1)).trim();
  if (body === "") {
    throw new LimitError(`"${raw}" names no host or group`, `Follow "${raw}" with a name, e.g. ${raw}staging`);
  }
  return { operator, body };
}

function matchTerm(body: string, universe: HostUniverse): string[] {
  if (body.startsWith("~")) return matchRegex(body, universe);
  const { base, subscript } = splitSubscript(body);
  const hosts = matchBase(base, universe);
  return subscript ? applySubscript(body, base, hosts, subscript) : hosts;
}

function matchRegex(body: string, universe: HostUniverse): string[] {
  let regex: RegExp;
  try {
    // Ansible uses Python's re.match: anchored at the start only.
    regex = new RegExp(`^(?:${body.slice(1)})`);
  } catch (error) {
    throw new LimitError(
      `"${body}" is not a valid regular expression (${(error as Error).message})`,
      "Fix the expression after ~, e.g. ~web\\d+",
    );
  }
  return matchNames((name) => regex.test(name), universe);
}

function splitSubscript(body: string): { base: string; subscript?: Subscript } {
  if (!body.endsWith("]")) return { base: body };
  const m = /^(.+)\[(?:(-?\d+)|(\d*):(\d*))\]$/.exec(body);
  const base = m?.[1];
  if (m === null || base === undefined || (m[2] === undefined && m[3] === "" && m[4] === "")) {
    throw new LimitError(
      `"${body}" has a subscript that is not a position or a range`,
      "Use a position like webservers[0] or webservers[-1], or an inclusive range like webservers[0:2]",
    );
  }
  if (m[2] !== undefined) return { base, subscript: { start: Number(m[2]) } };
  const start = m[3] === "" ? 0 : Number(m[3]);
  const end = m[4] === "" ? Number.POSITIVE_INFINITY : Number(m[4]);
  return { base, subscript: { start, end } };
}

function applySubscript(body: string, base: string, hosts: string[], subscript: Subscript): string[] {
  if (subscript.end !== undefined) return hosts.slice(subscript.start, subscript.end + 1);
  const index = subscript.start < 0 ? hosts.length + subscript.start : subscript.start;
  const host = hosts[index];
  if (host === undefined) {
    throw new LimitError(
      `"${body}" asks for position ${subscript.start} but "${base}" has ${plural(hosts.length, "host")}`,
      hosts.length === 0
        ? `Check that "${base}" matches some hosts before picking one by position`
        : `Use a position from 0 to ${hosts.length - 1}, or -1 for the last host`,
    );
  }
  return [host];
}

function matchBase(base: string, universe: HostUniverse): string[] {
  if (base === "all" || base === "*") return [...universe.hosts];
  if (base.includes("*") || base.includes("?")) {
    const glob = globToRegExp(base);
    return matchNames((name) => glob.test(name), universe);
  }
  const group = universe.groups[base];
  if (group) return [...group];
  if (universe.hosts.includes(base)) return [base];
  throw unknownNameError(base, universe);
}

/** Hosts of every matching group (in group order) followed by every matching host, without repeats. */
function matchNames(matches: (name: string) => boolean, universe: HostUniverse): string[] {
  const fromGroups = Object.entries(universe.groups)
    .filter(([group]) => matches(group))
    .flatMap(([, hosts]) => hosts);
  const fromHosts = universe.hosts.filter(matches);
  return [...new Set([...fromGroups, ...fromHosts])];
}

function globToRegExp(glob: string): RegExp {
  const source = [...glob]
    .map((char) => (char === "*" ? ".*" : char === "?" ? "." : char.replace(/[\\^$.|+()[\]{}]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`);
}

function unknownNameError(name: string, universe: HostUniverse): LimitError {
  const suggestions = closeNames(name, [...Object.keys(universe.groups), ...universe.hosts]);
  const fix =
    suggestions.length > 0
      ? `Close names in the inventory: ${suggestions.join(", ")}`
      : "Use a host or group name from the inventory, a glob such as web*, or a regex such as ~web\\d+";
  return new LimitError(`No host or group named "${name}" in the inventory`, fix);
}

function closeNames(name: string, candidates: string[]): string[] {
  const limit = Math.max(2, Math.floor(name.length / 3));
  return [...new Set(candidates)]
    .map((candidate) => ({ candidate, distance: editDistance(name.toLowerCase(), candidate.toLowerCase()) }))
    .filter(({ distance }) => distance <= limit)
    .sort((a, b) => a.distance - b.distance)
    .slice(0, MAX_SUGGESTIONS)
    .map(({ candidate }) => candidate);
}
