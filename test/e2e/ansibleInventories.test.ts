import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { PROJECT_ROOT, provision, tempDir } from "./helpers.js";
import { foldHosts } from "../../src/output/hostList.js";

/**
 * An existing Ansible repository, as users have them, pointed at real sshd hosts: an INI
 * inventory with Ansible's older var names and foreign vars, group_vars as a directory with a
 * vault-encrypted file, Ansible's own playbooks/site.yaml, several -i sources, and the
 * ansible-inventory JSON on stdin. plan → run → verify → plan again changes nothing.
 */
describe("an Ansible repository's inventory, unchanged, on real hosts", () => {
  let fleet: Fleet;
  let repo: string;
  let common: string[];
  const run = (args: string[], input?: string) =>
    provision([...args, ...common], { cwd: repo, timeoutMs: 120_000, ...(input === undefined ? {} : { input }) });

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    common = ["--known-hosts", fleet.knownHostsFile];
    repo = tempDir("ansible-repo");
    const [h1, h2, h3] = fleet.hosts;
    const key = fleet.clientKeyFile;
    const files: Record<string, string> = {
      "inventories/prod/hosts": [
        "# production — managed by the platform team",
        "[web]",
        `${h1!.name} ansible_host=${h1!.address} rack=r12`,
        `${h2!.name} ansible_ssh_host=${h2!.address} ansible_ssh_port="22"`,
        "",
        "[db]",
        `${h3!.name} ansible_host=${h3!.address}`,
        "",
        "[prod:children]",
        "web",
        "db",
        "",
        "[all:vars]",
        "ansible_ssh_user=root",
        `ansible_private_key_file=${key}`,
        "ansible_python_interpreter=/usr/bin/python3",
        "ntp_servers=['10.0.0.1', '10.0.0.2']",
        "",
      ].join("\n"),
      // Provision's limits of the fleet hosts (network namespaces), beside Ansible's own vars.
      "inventories/prod/group_vars/all/provision.yml": readFileSync(
        join(dirname(fleet.inventoryFile), "group_vars", "fleet.yaml"),
        "utf8",
      ),
      "inventories/prod/group_vars/all/main.yml":
        'datacenter: fra1\nmotd: "Welcome to {{ inventory_hostname }}"\napp:\n  port: 8080\n',
      "inventories/prod/group_vars/all/vault.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162636465666768\n",
      "inventories/prod/group_vars/db.yml":
        "vault_db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162636465666768\n",
      "playbooks/site.yaml":
        "- hosts: all\n  become: true\n  roles:\n    - common\n  tasks:\n    - name: ping\n      ansible.builtin.ping:\n",
      "extra.yaml": `db:\n  hosts:\n    ${h3!.name}:\n      ephemeral_ports:\n        port_range_start: 20000\n`,
    };
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(dirname(join(repo, rel)), { recursive: true });
      writeFileSync(join(repo, rel), text);
    }
  }, 120_000);
  afterAll(async () => {
    await fleet?.stop();
    if (repo) rmSync(repo, { recursive: true, force: true });
  });

  it("plan reads the INI inventory, says it passed over Ansible's playbooks/site.yaml, and plans every host", async () => {
    const r = await run(["plan", "-i", "inventories/prod/hosts"]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toContain(
      "note: playbooks/site.yaml is not provision's playbook (its plays have tasks:, which provision's plays don't), so it is not used",
    );
    expect(r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("note:"))).toEqual([]);
    expect(r.stdout).toMatch(/Plan: \d+ changes on 3 hosts, 0 unchanged, 0 failed\./);
  });

  it("run applies, verify agrees, and a second plan changes nothing", async () => {
    const applied = await run(["run", "-i", "inventories/prod/hosts", "--yes"]);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/Run: 3 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    const verified = await run(["verify", "-i", "inventories/prod/hosts"]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const again = await run(["plan", "-i", "inventories/prod/hosts"]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain(`${foldHosts(fleet.hosts.map((h) => h.name))} (3 hosts): no changes`);
  });

  it("a second -i source overrides one host's role param, as a later Ansible source does", async () => {
    const r = await run(["plan", "-i", "inventories/prod/hosts", "-i", "extra.yaml"]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toMatch(/net\.ipv4\.ip_local_port_range: 1024 65535 → 20000 65535/);
    expect(r.stdout).toMatch(/Plan: \d+ changes on 1 host, 2 unchanged, 0 failed\./);
  });

  it("the inventory as ansible-inventory --list prints it, fed on stdin (-i -), reaches the same hosts", async () => {
    const list = await provision(["inventory", "-i", "inventories/prod/hosts", "--list"], { cwd: repo });
    expect(list.code, list.stderr).toBe(0);
    const data = JSON.parse(list.stdout) as {
      _meta: { hostvars: Record<string, Record<string, unknown>> };
      prod: { children: string[] };
    };
    expect(data.prod.children).toEqual(["web", "db"]);
    expect(data._meta.hostvars[fleet.hosts[1]!.name]).toMatchObject({
      ansible_ssh_port: 22,
      datacenter: "fra1",
      motd: "Welcome to {{ inventory_hostname }}",
    });
    const verified = await run(["verify", "-i", "-"], list.stdout);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });
});

/**
 * ansible_connection: local — provision run on the host itself (as in an image build), here inside
 * a fleet host's namespaces: plan, run, plan again = no changes, and the same host verified over
 * SSH from outside agrees with what the local run applied.
 */
describe("ansible_connection: local, on the machine provision runs on", () => {
  let fleet: Fleet;
  let dir: string;
  const inside = (args: string[]) =>
    fleet.exec(
      "h1",
      `cd ${dir} && ${process.execPath} ${join(PROJECT_ROOT, "bin", "provision.js")} ${args.join(" ")} 2>&1`,
      { timeoutMs: 120_000 },
    );

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 1 });
    dir = tempDir("local-connection");
    mkdirSync(join(dir, "inventory", "group_vars"), { recursive: true });
    writeFileSync(join(dir, "inventory", "hosts"), "[controller]\nlocalhost ansible_connection=local\n");
    writeFileSync(
      join(dir, "inventory", "group_vars", "all.yml"),
      readFileSync(join(dirname(fleet.inventoryFile), "group_vars", "fleet.yaml"), "utf8"),
    );
  }, 120_000);
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plans, applies without SSH, verifies, and then has nothing left to do", async () => {
    const plan = await inside(["plan", "-i", "inventory/hosts"]);
    expect(plan.code, plan.stdout).toBe(2);
    expect(plan.stdout).toMatch(/localhost \(1 host\)|^localhost/m);
    const run = await inside(["run", "-i", "inventory/hosts", "--yes", "--state-dir", join(dir, "state")]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toContain("not an SSH session (no sshd above it)");
    expect(run.stdout).toMatch(/localhost: changed \(\d+ applied\), verified (\d+)\/\1/);
    expect(run.stdout).toMatch(/Run: 1 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    const again = await inside(["plan", "-i", "inventory/hosts"]);
    expect(again.code, again.stdout).toBe(0);
  });

  it("the same host, verified over SSH from outside, has what the local run applied", async () => {
    const r = await provision(["verify", fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});
