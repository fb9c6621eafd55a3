import type { RecordedHost, RunRecord } from "../rollout/record.js";
import type { BudgetVerdict } from "../rollout/merge.js";
import { groupOutcomes, type Outcome } from "./outcomes.js";
import { hostsTitle } from "./hostList.js";
import { plainStyle, type Style } from "./format.js";
import { plural } from "./words.js";

/**
 * A run told from its record (`records merge`): one line per outcome, hosts that ended alike
 * folded together, as `run` prints its own result. A record keeps counts and messages, not the
 * checks, so a line says how many changes were applied, not what was verified.
 */
export function renderRecord(record: RunRecord, style: Style = plainStyle): string {
  const out = groupOutcomes(record.hosts.map((h) => outcomeOf(h, style))).map(
    (g) => `${hostsTitle(g.hosts)}: ${g.text}`,
  );
  const count = (s: string) => record.hosts.filter((h) => h.status === s).length;
  const notReached = count("not-reached");
  out.push(
    `Run: ${count("changed")} changed, ${count("unchanged")} unchanged, ${count("failed")} failed, ${count("unreachable")} unreachable${notReached > 0 ? `, ${notReached} not reached` : ""} (${plural(record.hosts.length, "host")} of ${record.selection?.hosts ?? record.hosts.length} selected).`,
  );
  return `${out.join("\n")}\n`;
}

function outcomeOf(h: RecordedHost, style: Style): Outcome<RecordedHost> {
  const base = { host: h.host, item: h, kind: h.status };
  if (h.error !== undefined)
    return { ...base, text: `${style.red(h.status.toUpperCase())}: ${h.error}`, perHostDetails: true };
  if (h.status === "not-reached") return { ...base, text: style.dim("not reached"), perHostDetails: false };
  const text = h.status === "changed" ? style.green(`changed (${plural(h.changes, "change")} applied)`) : h.status;
  return { ...base, text, perHostDetails: false };
}

/** The gate's verdict: every budget line, then whether the next stage may start. */
export function renderVerdict(verdict: BudgetVerdict, style: Style = plainStyle): string {
  const last = verdict.pass
    ? style.green("PASS: within every failure budget; the next stage may start.")
    : style.red("STOP: a failure budget is exceeded or a shard stopped; the next stage must not start.");
  return `${[...verdict.lines, last].join("\n")}\n`;
}
