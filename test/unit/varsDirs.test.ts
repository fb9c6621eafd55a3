import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { loadInventory } from "../../src/inventory/load.js";
import { choosePlaybook } from "../../src/playbookChoice.js";
import { DEFAULT_PLAYBOOK } from "../../src/installRoot.js";
import { findRole } from "../../src/roles.js";

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
    expect(problems[0]).toMatchObject({
      file: join(dir, "group_vars", "all.yaml"),
      severity: "error",
      problem: "cannot read group_vars/all.yaml (ENOENT)",
    });
  });
});

describe("choosePlaybook", () => {
  const project = (name: string, files: Record<string, string>) => {
    const dir = join(root, name);
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    return dir;
  };
  const isRole = (name: string) => findRole(name) !== undefined;

  it("prefers ./playbooks/site.yaml where the user runs, when it is provision's", () => {
    const dir = project("project", { "playbooks/site.yaml": "- hosts: all\n  roles: [tw-reuse]\n" });
    expect(choosePlaybook(dir, isRole)).toEqual({ file: join(dir, "playbooks", "site.yaml") });
    expect(choosePlaybook(dir).file).toBe(join(dir, "playbooks", "site.yaml"));
  });

  it("prefers ./provision.yaml over everything", () => {
    const dir = project("own", {
      "provision.yaml": "- hosts: all\n  roles: [tw-reuse]\n",
      "playbooks/site.yaml": "- hosts: all\n  roles: [tw-reuse]\n",
    });
    expect(choosePlaybook(dir, isRole)).toEqual({ file: join(dir, "provision.yaml") });
  });

  it.each([
    [
      "plays with tasks",
      "- hosts: all\n  become: true\n  tasks:\n    - ansible.builtin.ping:\n",
      "its plays have tasks:, which provision's plays don't",
    ],
    [
      "an import",
      "- import_playbook: webservers.yml\n",
      "its plays have import_playbook:, which provision's plays don't",
    ],
    [
      "Ansible roles",
      "- hosts: all\n  roles:\n    - common\n    - nginx\n",
      "it applies role common, which is not one of provision's",
    ],
    [
      "role: entries",
      "- hosts: web\n  roles:\n    - role: geerlingguy.nginx\n",
      "it applies role geerlingguy.nginx, which is not one of provision's",
    ],
  ])("passes over an Ansible playbooks/site.yaml with %s, and says why", (_what, text, reason) => {
    const dir = project(`ansible-${reason.length}`, { "playbooks/site.yaml": text });
    const choice = choosePlaybook(dir, isRole);
    expect(choice.file).toBe(DEFAULT_PLAYBOOK);
    expect(choice.notice).toContain(`playbooks/site.yaml is not provision's playbook (${reason}), so it is not used`);
    expect(choice.notice).toContain("Put provision's plays in ./provision.yaml or pass -p FILE");
  });

  it("falls back to the bundled playbook", () => {
    expect(choosePlaybook(join(root, "empty"), isRole)).toEqual({ file: DEFAULT_PLAYBOOK });
  });
});
