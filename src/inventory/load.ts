import { resolve as resolvePath } from "node:path";
import type { ConfigProblem } from "../config/errors.js";
import { formatKeyPath, type KeyPath } from "../config/yamlFile.js";
import type { HostUniverse } from "./limit.js";
import type { Located, SourceFile, SourceEvent, VarBlock } from "./sources/model.js";
import { readSources } from "./sources/read.js";
import { checkVarBlock } from "./usedVars.js";
import { canonicalDir, VarsFiles } from "./varsFiles.js";

/** One mapping of variables and where it was written, so every value can say where it came from. */
export interface VarLayer {
  kind: "group" | "host";
  /** Group or host name the layer belongs to. */
  name: string;
  vars: Record<string, unknown>;
  source: SourceFile;
  basePath: KeyPath;
}

export interface InventoryHost {
  name: string;
  /** Where the host is first listed, for errors about the name itself. */
  definedAt: Located;
  /** Variable layers in Ansible's precedence order, lowest first (see `hostLayers`). */
  layers: VarLayer[];
  /** Every group the host is in (with ancestors), `all` first, then in Ansible's merge order. */
  groups: string[];
}

export interface InventoryGroup {
  name: string;
  /** Child groups and direct hosts, in the order the sources declared them. */
  children: string[];
  hosts: string[];
  /** Longest path from `all`; deeper groups override shallower ones. */
  depth: number;
  /** `ansible_group_priority`: among groups of one depth, higher wins. */
  priority: number;
}

export interface Inventory {
  /** The first source: relative key paths are resolved from its directory. */
  file: string;
  hosts: InventoryHost[];
  /** Every group, `all` and `ungrouped` first, then in declaration order. */
  groups: Map<string, InventoryGroup>;
  universe: HostUniverse;
  /** Vault-encrypted vars files that were not read. */
  encryptedVarsFiles: string[];
}

export interface InventoryOptions {
  /** group_vars/ and host_vars/ beside the playbook override those beside the inventory, as in Ansible. */
  playbookDir?: string;
  readStdin?: () => string;
}

/**
 * Reads Ansible inventory sources (YAML, INI, `ansible-inventory --list` JSON, directories,
 * comma lists) with their group_vars/ and host_vars/, merges them as Ansible does, and checks the
 * vars provision uses. Appends every problem found. What could be read is returned even when some
 * of it had errors, so later steps report their problems in the same run; null only when the
 * groups form a cycle. Callers check the problems for errors before using it.
 */
export function loadInventory(sourceArgs: string | string[], problems: ConfigProblem[], options: InventoryOptions = {}): Inventory | null {
  const args = typeof sourceArgs === "string" ? [sourceArgs] : sourceArgs;
  const sources = readSources(args, problems, options.readStdin);
  const graph = buildGraph(sources.flatMap((s) => s.parsed.flatMap((p) => p.events)), problems);
  if (!graph) return null;

  const varsFiles = new VarsFiles(problems);
  // Not deduplicated: Ansible reads a directory's group_vars once per source in it, and the last read wins.
  const inventoryDirs = sources.flatMap((s) => (s.varsDir === null ? [] : [canonicalDir(s.varsDir)]));
  const playDirs = options.playbookDir ? [canonicalDir(options.playbookDir)] : [];
  const varsDirs = [...new Set([...inventoryDirs, ...playDirs])];
  for (const dir of varsDirs) {
    varsFiles.checkEntries(dir, "group_vars", new Set(graph.groups.keys()), "group");
    varsFiles.checkEntries(dir, "host_vars", new Set(graph.hostOrder), "host");
  }

  const groupBlocks = (name: string, dirs: string[]) => dirs.flatMap((d) => varsFiles.find(d, "group_vars", name));
  const hostBlocks = (name: string, dirs: string[]) => dirs.flatMap((d) => varsFiles.find(d, "host_vars", name));
  const members = groupMembers(graph.groups);
  const blocks = new Set<VarBlock>([...graph.groups.values()].flatMap((g) => g.blocks));
  const layer = (kind: "group" | "host", owner: string) => (b: VarBlock): VarLayer => {
    blocks.add(b);
    return { kind, name: owner, ...b };
  };
  // Hosts in the same groups share their group layers: a large fleet has few distinct memberships.
  const groupsOfHost = new Map<string, string[]>(graph.hostOrder.map((h) => [h, []]));
  for (const [g, hostsOfGroup] of members) if (g !== "all") for (const h of hostsOfGroup) groupsOfHost.get(h)!.push(g);
  const byMembership = new Map<string, { groups: string[]; layers: VarLayer[] }>();
  const groupLayers = (memberOf: string[]) => {
    const key = memberOf.join("\u0000");
    let shared = byMembership.get(key);
    if (!shared) {
      const groups = mergeOrder(graph.groups, [...memberOf]);
      // Ansible's order, lowest first: `all` then the other groups as written in the inventory, then
      // group_vars/ of `all` (beside each inventory, then the playbook), then group_vars/ of the other
      // groups (source by source, group by group, then beside the playbook).
      const layers = [
        ...graph.groups.get("all")!.blocks.map(layer("group", "all")),
        ...groups.flatMap((g) => graph.groups.get(g)!.blocks.map(layer("group", g))),
        ...groupBlocks("all", inventoryDirs).map(layer("group", "all")),
        ...groupBlocks("all", playDirs).map(layer("group", "all")),
        ...inventoryDirs.flatMap((d) => groups.flatMap((g) => groupBlocks(g, [d]).map(layer("group", g)))),
        ...groups.flatMap((g) => groupBlocks(g, playDirs).map(layer("group", g))),
      ];
      shared = { groups: ["all", ...groups], layers };
      byMembership.set(key, shared);
    }
    return shared;
  };
  const hosts: InventoryHost[] = graph.hostOrder.map((name) => {
    const { groups, layers } = groupLayers(groupsOfHost.get(name)!);
    // Then the host's vars as written in the inventory, then host_vars/ (beside the sources, then the playbook).
    const own = [
      ...(graph.hostBlocks.get(name) ?? []).map(layer("host", name)),
      ...hostBlocks(name, inventoryDirs).map(layer("host", name)),
      ...hostBlocks(name, playDirs).map(layer("host", name)),
    ];
    return { name, definedAt: graph.definedAt.get(name)!, layers: own.length === 0 ? layers : [...layers, ...own], groups };
  });

  for (const b of blocks) checkVarBlock(b, problems);

  const universe: HostUniverse = {
    hosts: graph.hostOrder,
    groups: Object.fromEntries([...graph.groups.keys()].map((g) => [g, graph.hostOrder.filter((h) => members.get(g)!.has(h))])),
  };
  universe.groups.all = [...graph.hostOrder];
  return {
    file: resolvePath(args.find((a) => a !== "-" && !a.includes(",")) ?? "."),
    hosts,
    groups: new Map([...graph.groups].map(([n, g]) => [n, { name: n, children: g.children, hosts: g.hosts, depth: g.depth, priority: g.priority }])),
    universe,
    encryptedVarsFiles: varsFiles.encrypted,
  };
}

interface GraphGroup {
  children: string[];
  hosts: string[];
  /** The same hosts, for membership tests at inventory size. */
  hostSet: Set<string>;
  blocks: VarBlock[];
  depth: number;
  priority: number;
}

interface Graph {
  groups: Map<string, GraphGroup>;
  hostOrder: string[];
  hostBlocks: Map<string, VarBlock[]>;
  definedAt: Map<string, Located>;
}

/** Replays every source's declarations on one inventory, then Ansible's reconcile step. */
function buildGraph(events: SourceEvent[], problems: ConfigProblem[]): Graph | null {
  const groups = new Map<string, GraphGroup>();
  const group = (name: string) => {
    let g = groups.get(name);
    if (!g) {
      g = { children: [], hosts: [], hostSet: new Set(), blocks: [], depth: 0, priority: 1 };
      groups.set(name, g);
    }
    return g;
  };
  group("all");
  group("ungrouped");
  groups.get("all")!.children.push("ungrouped");
  const hostOrder: string[] = [];
  const hostBlocks = new Map<string, VarBlock[]>();
  const definedAt = new Map<string, Located>();
  const parents = new Map<string, Set<string>>();
  let failed = false;

  for (const e of events) {
    switch (e.kind) {
      case "group":
        group(e.name);
        break;
      case "child": {
        const parent = group(e.parent);
        group(e.child);
        if (parent.children.includes(e.child)) break;
        if (e.child === "all" || ancestors(e.parent, parents).has(e.child) || e.child === e.parent) {
          problems.push({
            file: e.at.source.file, ...e.at.source.locate(e.at.path, "key"), keyPath: formatKeyPath(e.at.path), severity: "error",
            problem: `making "${e.child}" a child of "${e.parent}" creates a cycle: ${cyclePath(e.parent, e.child, groups)}`,
            fix: "remove one of these children links",
          });
          failed = true;
          break;
        }
        parent.children.push(e.child);
        (parents.get(e.child) ?? parents.set(e.child, new Set()).get(e.child)!).add(e.parent);
        break;
      }
      case "host": {
        const g = group(e.group);
        if (!definedAt.has(e.name)) {
          definedAt.set(e.name, e.at);
          hostOrder.push(e.name);
          if (e.port !== undefined) hostBlocks.set(e.name, [{ vars: { ansible_port: e.port }, source: e.at.source, basePath: e.at.path }]);
        }
        if (!g.hostSet.has(e.name)) {
          g.hostSet.add(e.name);
          g.hosts.push(e.name);
        }
        break;
      }
      case "groupVars": {
        const g = group(e.group);
        const { ansible_group_priority: priority, ...rest } = e.block.vars;
        if (priority !== undefined) {
          const n = Number(priority);
          if (Number.isInteger(n)) g.priority = n;
          else {
            const path = [...e.block.basePath, "ansible_group_priority"];
            problems.push({ file: e.block.source.file, ...e.block.source.locate(path), keyPath: formatKeyPath(path), severity: "error", problem: `ansible_group_priority must be a whole number, got ${JSON.stringify(priority)}`, fix: "write a whole number such as 10 (higher wins among groups of one depth)" });
            failed = true;
          }
        }
        g.blocks.push(priority === undefined ? e.block : { ...e.block, vars: rest });
        break;
      }
      case "hostVars":
        (hostBlocks.get(e.host) ?? hostBlocks.set(e.host, []).get(e.host)!).push(e.block);
        break;
    }
  }
  if (failed) return null;

  // Reconcile as Ansible does: every parentless group hangs off `all`; hosts in no other group go to `ungrouped`.
  for (const [name] of groups) {
    if (name !== "all" && !parents.has(name)) {
      if (!groups.get("all")!.children.includes(name)) groups.get("all")!.children.push(name);
      (parents.get(name) ?? parents.set(name, new Set()).get(name)!).add("all");
    }
  }
  const all = groups.get("all")!;
  const ungrouped = groups.get("ungrouped")!;
  const inSomeGroup = new Set<string>();
  for (const [name, g] of groups) if (name !== "all" && name !== "ungrouped") for (const h of g.hosts) inSomeGroup.add(h);
  ungrouped.hosts = [...new Set([...ungrouped.hosts, ...all.hosts])].filter((h) => !inSomeGroup.has(h));
  ungrouped.hostSet = new Set(ungrouped.hosts);
  all.hosts = [];
  all.hostSet.clear();
  setDepths(groups);
  return { groups, hostOrder, hostBlocks, definedAt };
}

function ancestors(name: string, parents: Map<string, Set<string>>): Set<string> {
  const out = new Set<string>();
  const stack = [name];
  while (stack.length > 0) {
    for (const p of parents.get(stack.pop()!) ?? []) {
      if (!out.has(p)) {
        out.add(p);
        stack.push(p);
      }
    }
  }
  return out;
}

/** `parent → child → … → parent`: the loop the new link would close. */
function cyclePath(parent: string, child: string, groups: Map<string, GraphGroup>): string {
  const cameFrom = new Map<string, string>([[child, ""]]);
  const queue = [child];
  while (queue.length > 0) {
    const current = queue.shift()!;
    if (current === parent) break;
    for (const next of groups.get(current)?.children ?? []) {
      if (!cameFrom.has(next)) {
        cameFrom.set(next, current);
        queue.push(next);
      }
    }
  }
  const path = [parent];
  for (let at = cameFrom.get(parent); at !== undefined && at !== ""; at = cameFrom.get(at)) path.unshift(at);
  return [parent, ...path].join(" → ");
}

/** Depth as Ansible keeps it: the longest chain of parents from `all`. */
function setDepths(groups: Map<string, GraphGroup>): void {
  const visit = (name: string, depth: number, path: Set<string>) => {
    const g = groups.get(name)!;
    if (g.depth >= depth && name !== "all") return;
    g.depth = depth;
    path.add(name);
    for (const child of g.children) if (!path.has(child)) visit(child, depth + 1, path);
    path.delete(name);
  };
  visit("all", 0, new Set());
}

/** Ansible's sort_groups: by depth, then ansible_group_priority, then name. */
function mergeOrder(groups: Map<string, GraphGroup>, names: string[]): string[] {
  return names.sort((a, b) => {
    const ga = groups.get(a)!;
    const gb = groups.get(b)!;
    return ga.depth - gb.depth || ga.priority - gb.priority || (a < b ? -1 : a > b ? 1 : 0);
  });
}

/** Every host of each group, including those of its descendant groups. */
function groupMembers(groups: Map<string, GraphGroup>): Map<string, Set<string>> {
  const memo = new Map<string, Set<string>>();
  const members = (name: string): Set<string> => {
    const cached = memo.get(name);
    if (cached) return cached;
    const g = groups.get(name)!;
    const set = new Set(g.hosts);
    memo.set(name, set);
    for (const child of g.children) for (const h of members(child)) set.add(h);
    return set;
  };
  for (const name of groups.keys()) members(name);
  return memo;
}
