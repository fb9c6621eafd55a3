import type { HostStatus } from "./read.js";
import { VERDICT_RANK } from "./walls.js";

/**
 * `--format prometheus`: the text exposition format node_exporter's textfile collector reads
 * (a `.prom` file in its --collector.textfile.directory). No sample timestamps: the collector
 * refuses files that carry them. One series per host and wall; consumers are left out, since
 * process names and peer addresses would make the series count unbounded.
 */
interface Family {
  name: string;
  help: string;
  samples: Array<{ labels: Record<string, string>; value: number }>;
}

export function statusMetrics(statuses: readonly HostStatus[], now: Date): string {
  const family = (name: string, help: string): Family => ({ name: `provision_status_${name}`, help, samples: [] });
  const up = family("up", "1 when provision status read the host, 0 when it could not");
  const used = family("used", "how much of the wall is in use (fds, ports, sockets, entries, connections)");
  const limit = family("limit", "the limit the wall is measured against");
  const ratio = family("ratio", "used / limit (1 is the limit)");
  const verdict = family("verdict", "0 ok, 1 warn, 2 critical (by provision status thresholds)");
  const increase = family("window_increase", "increase of a drop counter over the sampling window");
  const window = family("window_seconds", "length of the sampling window");
  const last = family("last_run_timestamp_seconds", "when provision status wrote these metrics (Unix time)");
  for (const s of statuses) {
    up.samples.push({ labels: { host: s.host }, value: s.verdict === "error" ? 0 : 1 });
    if (s.windowSeconds !== null) window.samples.push({ labels: { host: s.host }, value: s.windowSeconds });
    for (const w of s.walls) {
      const labels = { host: s.host, wall: w.wall };
      if (w.used !== null) used.samples.push({ labels, value: w.used });
      if (w.limit !== null) limit.samples.push({ labels, value: w.limit });
      if (w.percent !== null)
        ratio.samples.push({
          labels,
          value: w.used !== null && w.limit ? Number((w.used / w.limit).toPrecision(6)) : w.percent / 100,
        });
      verdict.samples.push({ labels, value: VERDICT_RANK[w.verdict] });
      for (const [counter, value] of Object.entries(w.increase ?? {}))
        if (value !== null) increase.samples.push({ labels: { host: s.host, wall: w.wall, counter }, value });
    }
  }
  last.samples.push({ labels: {}, value: Math.floor(now.getTime() / 1000) });
  return [up, used, limit, ratio, verdict, increase, window, last]
    .filter((f) => f.samples.length > 0)
    .map(renderFamily)
    .join("");
}

function renderFamily(f: Family): string {
  const lines = [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} gauge`];
  for (const s of f.samples) {
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    lines.push(`${f.name}${labels.length > 0 ? `{${labels.join(",")}}` : ""} ${s.value}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The exposition format's escapes for a label value: backslash, double quote, newline. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
