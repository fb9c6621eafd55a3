import { sortProblems, type ConfigProblem } from "../config/errors.js";
import { closest } from "../config/suggest.js";
import { loadInventory } from "../inventory/load.js";
import type { Play } from "../playbook.js";
import { resolveTargets, type ResolvedHost } from "../resolve.js";

interface CapacityHosts {
  client: ResolvedHost | null;
  server: ResolvedHost | null;
  problems: ConfigProblem[];
}

/** Straight from the inventory (the probe applies no role, so no playbook); names must match exactly. */
export function loadCapacityHosts(inventorySources: string[], clientName: string, serverName: string): CapacityHosts {
  const problems: ConfigProblem[] = [];
  const inventory = loadInventory(inventorySources, problems);
  if (!inventory) return { client: null, server: null, problems: sortProblems(problems) };
  const { file } = inventory;
  const everyHost: Play = {
    name: "probe",
    hosts: "all",
    become: undefined,
    rollout: undefined,
    roles: [],
    index: 0,
    source: { file, data: null, locate: () => ({ line: 1, col: 1 }) },
  };
  const hosts = resolveTargets(inventory, [everyHost], undefined, problems);
  const names = hosts.map((h) => h.name);
  // --client and --server problems point at the inventory's start.
  const flagProblem = (problem: string, fix: string) =>
    problems.push({ file, line: 1, col: 1, keyPath: "", severity: "error", problem, fix });
  const pick = (name: string, flag: string): ResolvedHost | null => {
    const host = hosts.find((h) => h.name === name);
    if (host) return host;
    const guess = closest(name, names);
    flagProblem(
      `${flag} ${JSON.stringify(name)} is not a host of this inventory`,
      guess
        ? `did you mean "${guess}"?`
        : `use one of: ${names.slice(0, 10).join(", ")}${names.length > 10 ? ", …" : ""}`,
    );
    return null;
  };
  const client = pick(clientName, "--client");
  const server = pick(serverName, "--server");
  if (client && server && client.name === server.name) {
    flagProblem(
      "--client and --server are the same host",
      "probe between two hosts: the wall is per destination ip:port, seen from the client",
    );
  }
  return { client, server, problems: sortProblems(problems) };
}
