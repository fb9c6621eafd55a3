import { plural } from "./words.js";

/** One piece of a folded host list: a range like `web[01:50]` standing for `count` names, or one name. */
export interface HostRun {
  text: string;
  count: number;
}

/**
 * Host names as a short list: runs of three or more numbered names fold into Ansible's range
 * syntax (`web[01:50]`, `h[1:12]`), which an inventory or `--limit` accepts back; the rest stay
 * as they are. Runs keep the order in which their first host came.
 */
export function foldHosts(names: readonly string[]): string {
  return foldRuns(names)
    .map((r) => r.text)
    .join(", ");
}

/** The pieces foldHosts joins, each with how many names it stands for. */
export function foldRuns(names: readonly string[]): HostRun[] {
  const runs: Array<HostRun & { at: number }> = [];
  const byStem = new Map<string, Array<{ at: number; name: string; digits: string }>>();
  names.forEach((name, at) => {
    const m = /^(.*?)(\d+)(\D*)$/.exec(name);
    if (!m) {
      runs.push({ at, text: name, count: 1 });
      return;
    }
    const stem = `${m[1]}\0${m[3]}`;
    byStem.set(stem, [...(byStem.get(stem) ?? []), { at, name, digits: m[2]! }]);
  });
  for (const [stem, members] of byStem) {
    const [prefix, suffix] = stem.split("\0") as [string, string];
    const sorted = [...members].sort((a, b) => Number(a.digits) - Number(b.digits) || a.at - b.at);
    let run = [sorted[0]!];
    const flush = () => {
      if (run.length >= MIN_RUN) {
        const text = `${prefix}[${run[0]!.digits}:${run.at(-1)!.digits}]${suffix}`;
        runs.push({ at: Math.min(...run.map((m) => m.at)), text, count: run.length });
      } else runs.push(...run.map((m) => ({ at: m.at, text: m.name, count: 1 })));
    };
    for (const next of sorted.slice(1)) {
      const last = run.at(-1)!;
      if (Number(next.digits) === Number(last.digits) + 1 && sameWidth(last.digits, next.digits)) run.push(next);
      else {
        flush();
        run = [next];
      }
    }
    flush();
  }
  return runs.sort((a, b) => a.at - b.at).map(({ text, count }) => ({ text, count }));
}

/** Two folded together read the same way: neither zero-padded, or both of one width (web09, web10). */
function sameWidth(a: string, b: string): boolean {
  const padded = (d: string) => d.length > 1 && d.startsWith("0");
  return padded(a) || padded(b) ? a.length === b.length : true;
}

/** Folding two names saves nothing: `h1, h2` reads better than `h[1:2]`. */
const MIN_RUN = 3;

/** A group's hosts as a title: `h[1:3] (3 hosts)`, or the one host's name. */
export function hostsTitle(hosts: readonly string[]): string {
  return hosts.length === 1 ? hosts[0]! : `${foldHosts(hosts)} (${plural(hosts.length, "host")})`;
}

/**
 * A folded list cut to about `maxChars`: `web[001:040], db07, … 12 more` (more hosts, not pieces),
 * for a line that must stay one line whatever the names are.
 */
export function foldHostsWithin(names: readonly string[], maxChars: number): string {
  const runs = foldRuns(names);
  const shown: string[] = [];
  let length = 0;
  let covered = 0;
  for (const run of runs) {
    const isLast = covered + run.count === names.length;
    if (shown.length > 0 && length + run.text.length > maxChars && !isLast) break;
    shown.push(run.text);
    length += run.text.length + 2;
    covered += run.count;
  }
  const rest = names.length - covered;
  return rest > 0 ? `${shown.join(", ")}, … ${rest} more` : shown.join(", ");
}
