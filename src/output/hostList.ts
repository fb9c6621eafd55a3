/**
 * Host names as a short list: runs of three or more numbered names fold into Ansible's range
 * syntax (`web[01:50]`, `h[1:12]`), which an inventory or `--limit` accepts back; the rest stay
 * as they are. Runs keep the order in which their first host came.
 */
export function foldHosts(names: readonly string[]): string {
  const runs: Array<{ at: number; text: string }> = [];
  const byStem = new Map<string, Array<{ at: number; name: string; digits: string }>>();
  names.forEach((name, at) => {
    const m = /^(.*?)(\d+)(\D*)$/.exec(name);
    if (!m) {
      runs.push({ at, text: name });
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
        runs.push({ at: Math.min(...run.map((m) => m.at)), text });
      } else runs.push(...run.map((m) => ({ at: m.at, text: m.name })));
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
  return runs
    .sort((a, b) => a.at - b.at)
    .map((r) => r.text)
    .join(", ");
}

/** Two folded together read the same way: neither zero-padded, or both of one width (web09, web10). */
function sameWidth(a: string, b: string): boolean {
  const padded = (d: string) => d.length > 1 && d.startsWith("0");
  return padded(a) || padded(b) ? a.length === b.length : true;
}

/** Folding two names saves nothing: `h1, h2` reads better than `h[1:2]`. */
const MIN_RUN = 3;
