import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { graph, hostJson, listJson, pythonJson, REDACTED } from "../../src/inventory/ansibleView.js";
import { loadInventory } from "../../src/inventory/load.js";

const root = mkdtempSync(join(tmpdir(), "provision-sources-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function write(files: Record<string, string>, executable: string[] = []): string {
  const dir = join(root, String(++n));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), text);
    if (executable.includes(rel)) chmodSync(join(dir, rel), 0o755);
  }
  return dir;
}

function load(sources: string[], stdin?: string) {
  const problems: ConfigProblem[] = [];
  const inventory = loadInventory(sources, problems, stdin === undefined ? {} : { readStdin: () => stdin });
  return { inventory: inventory!, problems, errors: problems.filter((p) => p.severity === "error") };
}

describe("which parser reads a source", () => {
  it.each([
    ["an INI file without extension", "hosts", "[web]\nweb1 ansible_host=10.0.0.1\n"],
    ["an INI file named .ini", "hosts.ini", "[web]\nweb1 ansible_host=10.0.0.1\n"],
    ["a YAML file without extension", "hosts", "web:\n  hosts:\n    web1:\n      ansible_host: 10.0.0.1\n"],
    ["an INI file of bare host names", "hosts", "web1\n"],
    ["YAML in JSON syntax (.json)", "hosts.json", '{"web": {"hosts": {"web1": {"ansible_host": "10.0.0.1"}}}}'],
    [
      "ansible-inventory --list JSON",
      "inv.json",
      '{"web": {"hosts": ["web1"]}, "_meta": {"hostvars": {"web1": {"ansible_host": "10.0.0.1"}}}}',
    ],
  ])("%s", (_what, name, text) => {
    const dir = write({ [name]: text });
    const { inventory, errors } = load([join(dir, name)]);
    expect(errors).toEqual([]);
    expect(inventory.hosts.map((h) => h.name)).toEqual(["web1"]);
  });

  it("reads ansible-inventory --list JSON from stdin (-i -)", () => {
    const { inventory, errors } = load(
      ["-"],
      '{"web": {"hosts": ["web1", "web2"]}, "_meta": {"hostvars": {"web2": {"ansible_port": 2222}}}}',
    );
    expect(errors).toEqual([]);
    expect(inventory.universe.groups.web).toEqual(["web1", "web2"]);
    expect(JSON.parse(hostJson(inventory, "web2")!)).toEqual({ ansible_port: 2222 });
  });

  it("takes a comma list as Ansible's host_list does, with ports", () => {
    const { inventory, errors } = load(["10.0.0.1,10.0.0.2:2222,"]);
    expect(errors).toEqual([]);
    expect(inventory.hosts.map((h) => h.name)).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(JSON.parse(hostJson(inventory, "10.0.0.2")!)).toEqual({ ansible_port: 2222 });
  });

  it("reads a directory of sources in name order, skipping what Ansible skips", () => {
    const dir = write({
      "inv/01-web.yaml": "web:\n  hosts:\n    web1:\n",
      "inv/02-db": "[db]\ndb1\n[prod:children]\nweb\ndb\n",
      "inv/03-old.ini": "[old]\nold1\n",
      "inv/README.md": "# not an inventory\n",
      "inv/.hidden": "[hidden]\nh1\n",
      "inv/x.retry": "web1\n",
      "inv/group_vars/prod.yml": "ansible_user: deploy\n",
    });
    const { inventory, errors } = load([join(dir, "inv")]);
    expect(errors).toEqual([]);
    expect(inventory.hosts.map((h) => h.name)).toEqual(["web1", "db1"]);
    expect(JSON.parse(hostJson(inventory, "db1")!)).toEqual({ ansible_user: "deploy" });
  });

  it.each<[string, Record<string, string>, string, RegExp, string[]?]>([
    [
      "an inventory script",
      { "ec2.py": "#!/usr/bin/env python3\nprint('{}')\n" },
      "ec2.py",
      /executable inventory script; provision does not run programs/,
      ["ec2.py"],
    ],
    [
      "a dynamic inventory plugin's config",
      { "aws_ec2.yml": "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n" },
      "aws_ec2.yml",
      /configures the dynamic inventory plugin amazon\.aws\.aws_ec2/,
    ],
    ["a TOML inventory", { "hosts.toml": "[web.hosts]\nweb1 = {}\n" }, "hosts.toml", /TOML inventories are not read/],
    [
      "a vault-encrypted inventory",
      { hosts: "$ANSIBLE_VAULT;1.1;AES256\n3031\n" },
      "hosts",
      /the inventory file is vault-encrypted/,
    ],
    ["a missing file", {}, "nope.yaml", /no such inventory file or directory/],
  ])("refuses %s with how to read it instead", (_what, files, source, problem, executable = []) => {
    const dir = write({ ...files, ".keep": "" }, executable);
    const { errors } = load([join(dir, source)]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.problem).toMatch(problem);
    expect(errors[0]!.fix.length).toBeGreaterThan(10);
  });
});

it("a broken link in an inventory directory is a located error, not a crash", () => {
  const dir = write({ "inv/hosts": "web1\n" });
  symlinkSync(join(dir, "nowhere"), join(dir, "inv", "zz-broken"));
  const { errors } = load([join(dir, "inv")]);
  expect(errors.map((p) => [p.file, p.problem])).toEqual([
    [join(dir, "inv", "zz-broken"), "cannot read zz-broken (ENOENT)"],
  ]);
});

describe("several sources make one inventory, later ones winning", () => {
  it("merges groups and vars across formats, and group_vars beside each source apply", () => {
    const dir = write({
      "a/hosts": "[web]\nweb1 ansible_port=2201\n",
      "a/group_vars/web.yml": "ansible_user: from-a\n",
      "b/hosts.yaml": "web:\n  hosts:\n    web2:\n  vars:\n    tier: frontend\n",
      "b/group_vars/web.yml": "ansible_user: from-b\n",
    });
    const { inventory, errors } = load([join(dir, "a", "hosts"), join(dir, "b", "hosts.yaml")]);
    expect(errors).toEqual([]);
    expect(inventory.universe.groups.web).toEqual(["web1", "web2"]);
    expect(JSON.parse(hostJson(inventory, "web1")!)).toEqual({
      ansible_port: 2201,
      ansible_user: "from-b",
      tier: "frontend",
    });
  });

  it("an INI [g:vars] may name a group an earlier source declared", () => {
    const dir = write({
      "cloud.json": '{"tag_Role_web": {"hosts": ["i-1"]}}',
      "static.ini": "[tag_Role_web:vars]\nansible_user=ec2-user\n",
    });
    const { inventory, errors } = load([join(dir, "cloud.json"), join(dir, "static.ini")]);
    expect(errors).toEqual([]);
    expect(JSON.parse(hostJson(inventory, "i-1")!)).toEqual({ ansible_user: "ec2-user" });
  });

  it("host:port sets the port only where the host is first added, as in Ansible", () => {
    const dir = write({ "a.ini": "web1:2201\n", "b.ini": "[web]\nweb1:2202\n" });
    const { inventory } = load([join(dir, "a.ini"), join(dir, "b.ini")]);
    expect(JSON.parse(hostJson(inventory, "web1")!)).toEqual({ ansible_port: 2201 });
  });
});

describe("ansible-inventory --list JSON", () => {
  it("takes old-style bare host lists, and skips (with a warning) vars of hosts no group lists", () => {
    const { inventory, problems, errors } = load(
      ["-"],
      '{"_meta": {"hostvars": {"a": {"x": 1}, "ghost": {"y": 2}}}, "web": ["a", "b"], "db": {"hosts": ["c"], "vars": {"v": 1}, "children": ["web"]}}',
    );
    expect(errors).toEqual([]);
    expect(inventory.hosts.map((h) => h.name)).toEqual(["a", "b", "c"]);
    expect(problems.map((p) => p.keyPath)).toEqual(["_meta.hostvars.ghost"]);
    // Recorded from ansible-inventory 2.14 reading the same JSON through a script.
    expect(JSON.parse(listJson(inventory))).toEqual({
      _meta: { hostvars: { a: { v: 1, x: 1 }, b: { v: 1 }, c: { v: 1 } } },
      all: { children: ["ungrouped", "db"] },
      db: { children: ["web"], hosts: ["c"] },
      web: { hosts: ["a", "b"] },
    });
  });
});

describe("the ansible-inventory view", () => {
  it("sorts keys as Python does, integer-like ones included, with four-space indents", () => {
    expect(pythonJson({ b: 1, "10": 2, "9": 3, a: { z: [], y: {} } })).toBe(
      '{\n    "10": 2,\n    "9": 3,\n    "a": {\n        "y": {},\n        "z": []\n    },\n    "b": 1\n}',
    );
  });

  it("masks plain-text secrets but shows vaulted ones as ciphertext", () => {
    const dir = write({
      hosts:
        "all:\n  hosts:\n    h1:\n      ansible_become_password: hunter2\n      db_password: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        3031\n",
    });
    const { inventory } = load([join(dir, "hosts")]);
    const out = hostJson(inventory, "h1")!;
    expect(out).not.toContain("hunter2");
    expect(JSON.parse(out)).toEqual({
      ansible_become_password: REDACTED,
      db_password: { __ansible_vault: "$ANSIBLE_VAULT;1.1;AES256\n3031\n" },
    });
  });

  it("draws the graph from a group, children before hosts", () => {
    const dir = write({ hosts: "[web]\nw1\n[canary]\nw2\n[web:children]\ncanary\n[prod:children]\nweb\n" });
    const { inventory } = load([join(dir, "hosts")]);
    expect(graph(inventory, "prod")).toBe("@prod:\n  |--@web:\n  |  |--@canary:\n  |  |  |--w2\n  |  |--w1");
    expect(graph(inventory, "nope")).toBeNull();
  });
});
