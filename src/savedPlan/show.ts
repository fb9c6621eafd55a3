import type { Format } from "../output/format.js";
import { plural } from "../output/words.js";
import { BUNDLED_PLAYBOOK, type SavedPlan } from "./planFile.js";

/** The saved plan without its hosts and plans: what `show --json` adds to the plan's JSON. */
export function savedPlanDetails(saved: SavedPlan): Omit<SavedPlan, "hosts" | "plans"> {
  const { hosts: _hosts, plans: _plans, ...details } = saved;
  return details;
}

/** Who made the plan, when, and from what: printed above the plan by `show` and `run --plan`. */
export function renderSavedPlanHeader(file: string, saved: SavedPlan, format: Format): string {
  const changed = saved.hosts.filter((h) => h.status === "changed").length;
  const from = [
    `inventory ${saved.inventory.join(" ")}`,
    `playbook ${saved.playbook === BUNDLED_PLAYBOOK ? "bundled with provision" : saved.playbook}`,
    ...(saved.limit !== null ? [`--limit ${saved.limit}`] : []),
    ...(saved.tags.length > 0 ? [`--tags ${saved.tags.join(",")}`] : []),
    ...(saved.skipTags.length > 0 ? [`--skip-tags ${saved.skipTags.join(",")}`] : []),
  ].join(", ");
  const lines = [
    `Saved plan ${file}: made ${saved.createdAt} by provision ${saved.provision}`,
    `from ${from}`,
    `${plural(saved.hosts.length, "host")}, ${changed} to change; playbook sha256 ${saved.digests.playbook.slice(0, 12)}, hosts' configuration sha256 ${saved.digests.hosts.slice(0, 12)}`,
  ];
  if (format === "markdown") return `${lines.map((l) => `> ${l}`).join("\n")}\n\n`;
  return `${lines.join("\n")}\n\n`;
}
