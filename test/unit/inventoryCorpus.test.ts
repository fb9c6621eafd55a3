import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { listCases, type InventoryCase } from "../../scripts/inventoryCases.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { graph, listJson, REDACTED } from "../../src/inventory/ansibleView.js";
import { loadInventory, type Inventory } from "../../src/inventory/load.js";
import { isSecretName, USED_VARS } from "../../src/inventory/usedVars.js";
import { ROLES, roleVarName } from "../../src/roles.js";

/**
 * The corpus of real-world-shaped Ansible inventories (test/fixtures/inventories): each must load
 * without error, and `provision inventory --list` / `--graph` must say what ansible-inventory 2.14
 * said for the same sources (recorded by `npm run inventory:oracle`, checked by `-- --check`).
 */

interface AnsibleGroup {
  hosts?: string[];
  children?: string[];
}
type AnsibleList = Record<string, AnsibleGroup> & { _meta: { hostvars: Record<string, Record<string, unknown>> } };

function groupEntries(list: AnsibleList): Array<[string, AnsibleGroup]> {
  return Object.entries(list).filter(([k]) => k !== "_meta") as Array<[string, AnsibleGroup]>;
}

const USED_NAMES = new Set([
  ...Object.values(USED_VARS).flatMap((v) => v.names),
  ...ROLES.map((r) => roleVarName(r.name)),
]);

function load(c: InventoryCase): { inventory: Inventory | null; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const inventory = loadInventory(c.sources, problems, c.playbookDir ? { playbookDir: c.playbookDir } : {});
  return { inventory, problems };
}

function groupsOf(list: AnsibleList): Record<string, { hosts: string[]; children: string[] }> {
  const out: Record<string, { hosts: string[]; children: string[] }> = {};
  for (const [name, g] of groupEntries(list))
    out[name] = { hosts: [...(g.hosts ?? [])], children: [...(g.children ?? [])] };
  return out;
}

function masked(vars: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(vars).map(([k, v]) => [k, isSecretName(k) && typeof v === "string" ? REDACTED : v]),
  );
}

const cases = listCases();

describe("the inventory corpus", () => {
  it("has at least 15 cases, in INI, YAML, JSON and directories", () => {
    expect(cases.length).toBeGreaterThanOrEqual(15);
    const text = cases.flatMap((c) => c.sources).join(" ");
    expect(text).toMatch(/\.ini\b|\/hosts\b/);
    expect(text).toMatch(/\.ya?ml\b/);
    expect(cases.some((c) => c.listJson.length > 0)).toBe(true);
  });
});

describe.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
  const { inventory, problems } = load(c);
  const ansible = JSON.parse(readFileSync(c.listFile, "utf8")) as AnsibleList;
  const ours = inventory ? (JSON.parse(listJson(inventory)) as AnsibleList) : null;

  it("loads without errors", () => {
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(inventory).not.toBeNull();
  });

  it("has the hosts ansible-inventory lists, in its order", () => {
    const hosts = (list: AnsibleList) => [...new Set(groupEntries(list).flatMap(([, g]) => g.hosts ?? []))].sort();
    expect(hosts(ours!)).toEqual(hosts(ansible));
  });

  it("has the groups ansible-inventory lists, with the same hosts and children in the same order", () => {
    expect(groupsOf(ours!)).toEqual(groupsOf(ansible));
  });

  it("gives every host the values ansible-inventory gives it for the vars provision uses", () => {
    const pick = (vars: Record<string, unknown> | undefined) =>
      Object.fromEntries(Object.entries(vars ?? {}).filter(([k]) => USED_NAMES.has(k)));
    for (const host of Object.keys(ansible._meta.hostvars)) {
      expect(pick(ours!._meta.hostvars[host]), host).toEqual(pick(masked(ansible._meta.hostvars[host]!)));
    }
  });

  it("gives every host all the vars ansible-inventory gives it (except those in vault-encrypted files)", () => {
    const encrypted = inventory!.encryptedVarsFiles.length > 0;
    for (const [host, theirs] of Object.entries(ansible._meta.hostvars)) {
      const mine = ours!._meta.hostvars[host] ?? {};
      const expected = masked(theirs);
      if (encrypted) {
        for (const [k, v] of Object.entries(mine)) expect(v, `${host}.${k}`).toEqual(expected[k]);
      } else {
        expect(mine, host).toEqual(expected);
      }
    }
    for (const host of Object.keys(ours!._meta.hostvars))
      expect(ansible._meta.hostvars, `${host} has vars only in provision's view`).toHaveProperty([host]);
  });

  it("draws the graph ansible-inventory --graph draws", () => {
    expect(graph(inventory!)).toBe(readFileSync(c.graphFile, "utf8").trimEnd());
  });
});
