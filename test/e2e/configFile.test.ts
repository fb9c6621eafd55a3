import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSettings, realFs, SETTING_KEYS } from "../../src/config/settings.js";
import { ansibleBoolean } from "../../src/inventory/usedVars.js";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, tempDir } from "./helpers.js";

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}

/**
 * A repository with an ansible.cfg (inventory, forks, remote_user, private_key_file,
 * host_key_checking = False, timeout) and a provision.cfg (known_hosts), against real sshd hosts:
 * no -i, no -u, no key and no --known-hosts on the command line. The inventory sets no
 * ansible_user and no key, so remote_user and private_key_file are what make the logins work.
 */
describe("ansible.cfg and provision.cfg, on real hosts", () => {
  let fleet: Fleet;
  let repo: string;
  let home: string;
  let knownHosts: string;
  const run = (args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) =>
    provision(args, { cwd: opts.cwd ?? repo, env: { HOME: home, ...opts.env }, timeoutMs: 120_000 });
  const names = () => fleet.hosts.map((h) => h.name);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    repo = tempDir("config-repo");
    home = tempDir("config-home");
    knownHosts = join(repo, "ssh", "known_hosts");
    const hosts = (list: Fleet["hosts"]) =>
      list.map((h) => `        ${h.name}:\n          ansible_host: ${h.address}\n`).join("");
    write(repo, {
      "ansible.cfg": [
        "# the team's Ansible settings",
        "[defaults]",
        "inventory = ./inv.yml",
        "forks = 2",
        "remote_user = deploy",
        "private_key_file = keys/id_ed25519   ; relative to this file",
        "host_key_checking = False",
        "timeout = 5",
        "",
        "[ssh_connection]",
        "pipelining = True",
        "",
      ].join("\n"),
      "provision.cfg": "[defaults]\nknown_hosts = ssh/known_hosts\n",
      "inv.yml": `all:\n  vars:\n    ansible_become: true\n  children:\n    fleet:\n      hosts:\n${hosts(fleet.hosts)}`,
      "other.yml": `all:\n  children:\n    fleet:\n      hosts:\n${hosts(fleet.hosts.slice(2))}`,
      "group_vars/fleet.yaml": readFileSync(join(dirname(fleet.inventoryFile), "group_vars", "fleet.yaml"), "utf8"),
      "ssh/known_hosts": "",
      "bad.cfg": "[defaults]\nforks = 0\n",
    });
    mkdirSync(join(repo, "keys"));
    copyFileSync(fleet.clientKeyFile, join(repo, "keys", "id_ed25519"));
    chmodSync(join(repo, "keys", "id_ed25519"), 0o600);
  });
  afterAll(async () => {
    await fleet?.stop();
    for (const dir of [repo, home]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("--list-hosts shows ansible.cfg's inventory; -i replaces it", async () => {
    const listed = await run(["plan", "--list-hosts"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain("hosts (3):");
    for (const name of names()) expect(listed.stdout).toContain(`  ${name}\t`);

    const other = await run(["plan", "--list-hosts", "-i", "other.yml"]);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toContain(`hosts (1):\n  ${fleet.hosts[2]!.name}\t`);
  });

  it("plan with nothing on the command line logs in as remote_user with private_key_file and records new host keys", async () => {
    const r = await run(["plan", "-v"]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toMatch(/Plan: \d+ changes on 3 hosts, 0 unchanged, 0 failed\./);
    expect(r.stderr).toContain(
      `note: ${repo}/ansible.cfg:7: host_key_checking = False: provision never turns host key checking off; it records the keys of hosts not yet in known_hosts (as --accept-new-host-keys) and still refuses a host whose key changed`,
    );
    expect(r.stderr).toMatch(
      new RegExp(
        `using ${repo}/ansible\\.cfg as Ansible's config file: inventory, host_key_checking, timeout, remote_user, private_key_file, forks\\n`,
      ),
    );
    expect(r.stderr).toContain(`using ${repo}/provision.cfg as provision's config file: known_hosts\n`);
    for (const h of fleet.hosts) expect(r.stderr).toContain(`${h.name}: connecting (ssh2 deploy@${h.address}:22)`);
    // host_key_checking = False recorded each new key in provision.cfg's known_hosts file
    const recorded = readFileSync(knownHosts, "utf8").split("\n").filter(Boolean).sort();
    expect(recorded).toEqual(readFileSync(fleet.knownHostsFile, "utf8").split("\n").filter(Boolean).sort());
  });

  it("with host_key_checking = False a changed host key is still refused", async () => {
    const lines = readFileSync(fleet.knownHostsFile, "utf8").split("\n").filter(Boolean);
    const key = (line: string) => line.split(" ").slice(1).join(" ");
    // h2's key under h1's address: h1's key "changed"
    writeFileSync(knownHosts, `${fleet.hosts[0]!.address} ${key(lines[1]!)}\n`);
    try {
      const r = await run(["plan", "--limit", fleet.hosts[0]!.name]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain("HOST KEY CHANGED");
    } finally {
      writeFileSync(knownHosts, lines.join("\n") + "\n");
    }
  });

  it("a flag beats the config: -u over remote_user, -f over a forks the flag makes unread", async () => {
    const r = await run(["plan", "-v", "-u", "root", "--limit", fleet.hosts[0]!.name]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toContain(`connecting (ssh2 root@${fleet.hosts[0]!.address}:22)`);

    const bad = await run(["plan", "--list-hosts", "--config", "bad.cfg"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `${repo}/bad.cfg:2:9 forks: "0" is not a valid value: --forks must be a whole number of at least 1. Write a value --forks accepts, or remove the line to use Ansible's setting or the default (50).\n1 error in the configuration; nothing was sent to any host.\n`,
    );
    const flag = await run(["plan", "--list-hosts", "--config", "bad.cfg", "-f", "2"]);
    expect(flag.code, flag.stderr).toBe(0);
  });

  it("ANSIBLE_CONFIG from another directory: its relative paths are from the file's own directory", async () => {
    const elsewhere = tempDir("config-elsewhere");
    try {
      const r = await run(["lint"], { cwd: elsewhere, env: { ANSIBLE_CONFIG: join(repo, "ansible.cfg") } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe("Lint: 3 hosts, 0 errors, 0 warnings; nothing was sent to any host.\n");
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it("provision inventory --list without -i prints what ansible-inventory --list prints in the same directory", async () => {
    const ours = await run(["inventory", "--list"]);
    expect(ours.code, ours.stderr).toBe(0);
    if (!hasAnsible("ansible-inventory")) return;
    const theirs = spawnSync("ansible-inventory", ["--list"], { cwd: repo, env: { ...ansibleEnv(), HOME: home } });
    expect(theirs.status, theirs.stderr.toString()).toBe(0);
    expect(JSON.parse(ours.stdout)).toEqual(JSON.parse(theirs.stdout.toString()));
  });

  it("every provision.cfg key is a flag of provision run", async () => {
    const help = await run(["run", "--help"]);
    for (const key of Object.keys(SETTING_KEYS)) expect(help.stdout).toContain(`--${key.replace(/_/g, "-")}`);
  });
});

function hasAnsible(tool: string): boolean {
  const found = spawnSync(tool, ["--version"], { env: ansibleEnv() }).status === 0;
  if (!found) console.warn(`${tool} is not installed: the comparison with Ansible is skipped`);
  return found;
}

/** Ansible's own environment only: no ANSIBLE_* of whoever runs the tests. */
function ansibleEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" };
}

/** What Ansible (or provision) makes of the settings provision reads; paths with the case's root as <root>. */
interface Resolved {
  config: string | null;
  inventory?: string[];
  forks?: number;
  remote_user?: string;
  private_key_file?: string;
  host_key_checking?: boolean;
  timeout?: number;
  /** Where each came from: a file, or env: NAME. */
  origins: Record<string, string>;
}

interface OracleCase {
  name: string;
  files: Record<string, string>;
  env?: Record<string, string>;
  worldWritableRepo?: boolean;
  expected: Resolved;
}

/**
 * Each case: files under a fresh <root> (the current directory is <root>/repo, HOME is
 * <root>/home), what provision resolves, checked against the values written here and, where
 * ansible-core is installed, against `ansible-config dump --only-changed -t all` in the same place.
 */
const ORACLE: OracleCase[] = [
  {
    name: "./ansible.cfg: every key, relative paths, ~ and $VAR, a quoted string, a ; comment, [ssh_connection]",
    files: {
      "repo/ansible.cfg": [
        "[defaults]",
        "inventory = ./inv.yml, ~/shared/hosts.ini ,$SITE/extra.yml",
        "forks = 12",
        'remote_user = "deploy"   ; quoted, with a comment',
        "private_key_file = keys/id_ed25519",
        "host_key_checking = False",
        "timeout = 7",
        "[ssh_connection]",
        "timeout = 9",
      ].join("\n"),
    },
    env: { SITE: "/srv/site" },
    expected: {
      config: "<root>/repo/ansible.cfg",
      inventory: ["<root>/repo/inv.yml", "<root>/home/shared/hosts.ini", "/srv/site/extra.yml"],
      forks: 12,
      remote_user: "deploy",
      private_key_file: "<root>/repo/keys/id_ed25519",
      host_key_checking: false,
      timeout: 9,
      origins: {
        inventory: "<root>/repo/ansible.cfg",
        forks: "<root>/repo/ansible.cfg",
        remote_user: "<root>/repo/ansible.cfg",
        private_key_file: "<root>/repo/ansible.cfg",
        host_key_checking: "<root>/repo/ansible.cfg",
        timeout: "<root>/repo/ansible.cfg",
      },
    },
  },
  {
    name: "key: value, an upper-case key, a value continued on an indented line",
    files: { "repo/ansible.cfg": "[defaults]\nInventory: a.yml,\n    b.yml\nFORKS=3\n" },
    expected: {
      config: "<root>/repo/ansible.cfg",
      inventory: ["<root>/repo/a.yml", "<root>/repo/b.yml"],
      forks: 3,
      origins: { inventory: "<root>/repo/ansible.cfg", forks: "<root>/repo/ansible.cfg" },
    },
  },
  {
    name: "[DEFAULT] fills in [defaults]",
    files: { "repo/ansible.cfg": "[DEFAULT]\nforks = 4\nremote_user = ops\n[defaults]\ntimeout = 5\n" },
    expected: {
      config: "<root>/repo/ansible.cfg",
      forks: 4,
      remote_user: "ops",
      timeout: 5,
      origins: {
        forks: "<root>/repo/ansible.cfg",
        remote_user: "<root>/repo/ansible.cfg",
        timeout: "<root>/repo/ansible.cfg",
      },
    },
  },
  {
    name: "ANSIBLE_* beat ansible.cfg; their paths are from the current directory",
    files: { "repo/ansible.cfg": "[defaults]\nforks = 3\nremote_user = x\ninventory = cfg.yml\n" },
    env: {
      ANSIBLE_FORKS: "8",
      ANSIBLE_REMOTE_USER: "ci",
      ANSIBLE_INVENTORY: "env.yml,/abs/b.yml",
      ANSIBLE_TIMEOUT: "6",
      ANSIBLE_SSH_TIMEOUT: "11",
      ANSIBLE_HOST_KEY_CHECKING: "no",
      ANSIBLE_PRIVATE_KEY_FILE: "~/k",
    },
    expected: {
      config: "<root>/repo/ansible.cfg",
      inventory: ["<root>/repo/env.yml", "/abs/b.yml"],
      forks: 8,
      remote_user: "ci",
      private_key_file: "<root>/home/k",
      host_key_checking: false,
      timeout: 11,
      origins: {
        inventory: "env: ANSIBLE_INVENTORY",
        forks: "env: ANSIBLE_FORKS",
        remote_user: "env: ANSIBLE_REMOTE_USER",
        private_key_file: "env: ANSIBLE_PRIVATE_KEY_FILE",
        host_key_checking: "env: ANSIBLE_HOST_KEY_CHECKING",
        timeout: "env: ANSIBLE_SSH_TIMEOUT",
      },
    },
  },
  {
    name: "ANSIBLE_CONFIG naming a directory elsewhere: its ansible.cfg, paths from there; ./ansible.cfg unread",
    files: {
      "etc/ansible.cfg": "[defaults]\ninventory = hosts.yml\nprivate_key_file = ../keys/k\n",
      "repo/ansible.cfg": "[defaults]\nforks = 99\n",
    },
    env: { ANSIBLE_CONFIG: "<root>/etc" },
    expected: {
      config: "<root>/etc/ansible.cfg",
      inventory: ["<root>/etc/hosts.yml"],
      private_key_file: "<root>/keys/k",
      origins: { inventory: "<root>/etc/ansible.cfg", private_key_file: "<root>/etc/ansible.cfg" },
    },
  },
  {
    name: "~/.ansible.cfg when the current directory has none; {{CWD}} is the current directory",
    files: { "home/.ansible.cfg": "[defaults]\nforks = 6\ninventory = {{CWD}}/local.yml, inv\n" },
    expected: {
      config: "<root>/home/.ansible.cfg",
      forks: 6,
      inventory: ["<root>/repo/local.yml", "<root>/home/inv"],
      origins: { forks: "<root>/home/.ansible.cfg", inventory: "<root>/home/.ansible.cfg" },
    },
  },
  {
    name: "a world-writable current directory: its ansible.cfg is ignored, ~/.ansible.cfg is read",
    files: { "repo/ansible.cfg": "[defaults]\nforks = 3\n", "home/.ansible.cfg": "[defaults]\nforks = 6\n" },
    worldWritableRepo: true,
    expected: { config: "<root>/home/.ansible.cfg", forks: 6, origins: { forks: "<root>/home/.ansible.cfg" } },
  },
];

describe("ansible.cfg and ANSIBLE_* as Ansible reads them (ansible-config is the oracle where installed)", () => {
  const withAnsible = hasAnsible("ansible-config");

  it.each(ORACLE.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const root = tempDir("ansible-cfg");
    try {
      const fill = (s: string) => s.split("<root>").join(root);
      write(root, Object.fromEntries(Object.entries(c.files).map(([k, v]) => [k, fill(v)])));
      mkdirSync(join(root, "repo"), { recursive: true });
      mkdirSync(join(root, "home"), { recursive: true });
      if (c.worldWritableRepo) chmodSync(join(root, "repo"), 0o777);
      const env = Object.fromEntries(Object.entries(c.env ?? {}).map(([k, v]) => [k, fill(v)]));
      const expected = JSON.parse(fill(JSON.stringify(c.expected))) as Resolved;

      const settings = loadSettings({ env, cwd: join(root, "repo"), home: join(root, "home"), fs: realFs });
      expect(settings.problems).toEqual([]);
      expect(ours(settings)).toEqual(expected);
      if (withAnsible) expect(ansible(join(root, "repo"), { ...env, HOME: join(root, "home") })).toEqual(expected);
    } finally {
      if (c.worldWritableRepo) chmodSync(join(root, "repo"), 0o700);
      rmSync(root, { recursive: true, force: true });
    }
  });
});

function ours(settings: ReturnType<typeof loadSettings>): Resolved {
  const out: Resolved = { config: settings.files.find((f) => f.source === "ansible.cfg")?.file ?? null, origins: {} };
  const origin = (s: { origin: { source: string; file: string } }) =>
    s.origin.source === "environment" ? `env: ${s.origin.file}` : s.origin.file;
  for (const s of settings.values.values()) {
    const name = {
      inventory: "inventory",
      forks: "forks",
      user: "remote_user",
      private_key: "private_key_file",
      accept_new_host_keys: "host_key_checking",
      connect_timeout: "timeout",
    }[s.key as string] as keyof Resolved & string;
    out.origins[name] = origin(s);
    if (s.key === "inventory") out.inventory = s.items;
    else if (s.key === "forks") out.forks = Number(s.text);
    else if (s.key === "user") out.remote_user = s.text;
    else if (s.key === "private_key") out.private_key_file = s.text;
    else if (s.key === "accept_new_host_keys") out.host_key_checking = ansibleBoolean(s.text);
    else if (s.key === "connect_timeout") out.timeout = Number(s.text);
  }
  return out;
}

/** What `ansible-config dump --only-changed -t all` says, for the settings provision reads. */
function ansible(cwd: string, env: Record<string, string>): Resolved {
  const r = spawnSync("ansible-config", ["dump", "--only-changed", "-t", "all", "-f", "json"], {
    cwd,
    env: { ...ansibleEnv(), ...env },
  });
  expect(r.status, r.stderr.toString()).toBe(0);
  type Entry = { name: string; origin: string; value: unknown };
  const dump = JSON.parse(r.stdout.toString()) as Array<Entry | Record<string, Array<Record<string, Entry[]>>>>;
  const base = new Map(dump.filter((e): e is Entry => "name" in e).map((e) => [e.name, e]));
  const plugins = (
    dump.find((e) => "CONNECTION_PLUGINS" in e) as { CONNECTION_PLUGINS?: Array<Record<string, Entry[]>> }
  )?.CONNECTION_PLUGINS;
  const ssh = new Map((plugins?.find((p) => "ssh" in p)?.ssh ?? []).map((e) => [e.name, e]));
  const out: Resolved = { config: (base.get("CONFIG_FILE")?.value as string | undefined) ?? null, origins: {} };
  // The path Ansible resolves is the base setting's (the ssh plugin's own copy of private_key_file is unresolved).
  const picks: Array<[keyof Resolved & string, Entry | undefined]> = [
    ["inventory", base.get("DEFAULT_HOST_LIST")],
    ["forks", base.get("DEFAULT_FORKS")],
    ["remote_user", ssh.get("remote_user")],
    ["private_key_file", base.get("DEFAULT_PRIVATE_KEY_FILE")],
    ["host_key_checking", ssh.get("host_key_checking")],
    ["timeout", ssh.get("timeout")],
  ];
  for (const [name, entry] of picks) {
    if (!entry) continue;
    (out as unknown as Record<string, unknown>)[name] = entry.value;
    out.origins[name] = entry.origin;
  }
  return out;
}
