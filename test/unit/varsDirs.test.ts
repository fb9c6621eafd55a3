import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { loadInventory } from "../../src/inventory/load.js";
import { defaultPlaybook, DEFAULT_PLAYBOOK } from "../../src/paths.js";

const root = mkdtempSync(join(tmpdir(), "provision-varsdirs-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("group_vars/ with a broken link", () => {
  it("is a located config error, not a crash", () => {
    const dir = join(root, "broken");
    mkdirSync(join(dir, "group_vars"), { recursive: true });
    writeFileSync(join(dir, "hosts.yaml"), "all:\n  hosts:\n    a:\n");
    symlinkSync(join(dir, "nowhere.yaml"), join(dir, "group_vars", "all.yaml"));
    const problems: ConfigProblem[] = [];
    loadInventory(join(dir, "hosts.yaml"), problems);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: join(dir, "group_vars", "all.yaml"), severity: "error", problem: "cannot read group_vars/all.yaml (ENOENT)" });
  });
});

describe("defaultPlaybook", () => {
  it("prefers ./playbooks/site.yaml where the user runs, like Ansible", () => {
    const project = join(root, "project");
    mkdirSync(join(project, "playbooks"), { recursive: true });
    writeFileSync(join(project, "playbooks", "site.yaml"), "- hosts: all\n  roles: [tw-reuse]\n");
    expect(defaultPlaybook(project)).toBe(join(project, "playbooks", "site.yaml"));
  });

  it("falls back to the bundled playbook", () => {
    expect(defaultPlaybook(join(root, "empty"))).toBe(DEFAULT_PLAYBOOK);
  });
});
