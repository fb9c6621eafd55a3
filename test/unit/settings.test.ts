import { Command, InvalidArgumentError, Option } from "commander";
import { describe, expect, it } from "vitest";
import { applySettings, applyToCommand, settingKeyOf } from "../../src/config/applySettings.js";
import { formatProblem, type ConfigProblem } from "../../src/config/errors.js";
import { parseIni } from "../../src/config/ini.js";
import {
  findAnsibleConfig,
  findProvisionConfig,
  loadSettings,
  SETTING_KEYS,
  unquote,
  type SettingKey,
  type SettingsContext,
  type SettingsFs,
} from "../../src/config/settings.js";

/** A file system of a few files: path → content; directories are every parent of a file, plus `dirs`. */
function fakeFs(files: Record<string, string>, opts: { worldWritable?: string[]; dirs?: string[] } = {}): SettingsFs {
  const dirs = new Set(opts.dirs ?? []);
  for (const f of Object.keys(files)) for (let d = f; d !== "/";) dirs.add((d = d.slice(0, d.lastIndexOf("/")) || "/"));
  return {
    readable: (p) => p in files || dirs.has(p),
    isDirectory: (p) => dirs.has(p),
    worldWritable: (d) => (dirs.has(d) ? (opts.worldWritable ?? []).includes(d) : undefined),
    read: (p) => {
      if (!(p in files)) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
      return files[p]!;
    },
  };
}

function ctx(
  files: Record<string, string>,
  more: Partial<Omit<SettingsContext, "fs">> & { worldWritable?: string[]; dirs?: string[] } = {},
): SettingsContext {
  const { worldWritable, dirs, ...rest } = more;
  return {
    env: {},
    cwd: "/repo",
    home: "/home/sre",
    fs: fakeFs(files, { worldWritable, dirs: [...(dirs ?? []), "/repo", "/home/sre"] }),
    ...rest,
  };
}

/** The values as text (lists joined by " | "), with where each came from. */
function values(c: SettingsContext): Record<string, string> {
  const s = loadSettings(c);
  expect(s.problems.map(formatProblem)).toEqual([]);
  return Object.fromEntries(
    [...s.values.values()].map((v) => [
      v.key,
      `${v.items ? v.items.join(" | ") : v.text} @${v.origin.source === "environment" ? v.origin.file : `${v.origin.file}:${v.origin.line}`}`,
    ]),
  );
}

describe("parseIni reads ansible.cfg as Python's configparser does with Ansible's settings", () => {
  it.each<[string, string, Record<string, Record<string, string>>]>([
    ["key = value", "[defaults]\nforks = 10\n", { defaults: { forks: "10" } }],
    ["key: value", "[defaults]\nforks: 10\n", { defaults: { forks: "10" } }],
    [
      "the first = or : splits",
      "[defaults]\nremote_user = a:b=c\nx:y = z\n",
      { defaults: { remote_user: "a:b=c", x: "y = z" } },
    ],
    ["keys are lowercased, sections are not", "[Defaults]\nFORKS = 3\n", { Defaults: { forks: "3" } }],
    ["no spaces needed", "[defaults]\nforks=3\n", { defaults: { forks: "3" } }],
    [
      "# and ; comment lines, indented too",
      "# top\n; top\n[defaults]\n  # note\n\t; note\nforks = 3\n",
      { defaults: { forks: "3" } },
    ],
    [
      "; after whitespace ends the value",
      "[defaults]\nremote_user = deploy   ; the login\n",
      { defaults: { remote_user: "deploy" } },
    ],
    [
      "; without whitespace before it is text",
      "[defaults]\nremote_user = de;ploy\n",
      { defaults: { remote_user: "de;ploy" } },
    ],
    [
      "# inside a line is text (Ansible's inline prefixes are ; only)",
      "[defaults]\nforks = 10 # ten\n",
      { defaults: { forks: "10 # ten" } },
    ],
    [
      "quotes are kept (Ansible unquotes later, for strings only)",
      '[defaults]\nremote_user = "deploy"\n',
      { defaults: { remote_user: '"deploy"' } },
    ],
    ["an empty value", "[defaults]\nremote_user =\n", { defaults: { remote_user: "" } }],
    [
      "an indented line continues the value",
      "[defaults]\ninventory = a.yml,\n    b.yml\nforks = 3\n",
      { defaults: { inventory: "a.yml,\nb.yml", forks: "3" } },
    ],
    [
      "blank lines inside a continued value stay, trailing ones go",
      "[defaults]\ninventory = a,\n\n  b\n\nforks = 3\n",
      { defaults: { inventory: "a,\n\nb", forks: "3" } },
    ],
    [
      "an indented key under another key is part of its value",
      "[defaults]\ninventory = a\n  forks = 5\n",
      { defaults: { inventory: "a\nforks = 5" } },
    ],
    ["CRLF line ends", "[defaults]\r\nforks = 3\r\n", { defaults: { forks: "3" } }],
    [
      "[DEFAULT] is every section's fallback, not a section",
      "[DEFAULT]\nforks = 4\n[defaults]\n",
      { defaults: {}, DEFAULT: { forks: "4" } },
    ],
    ["text after ] is ignored", "[defaults] extra\nforks = 3\n", { defaults: { forks: "3" } }],
    [
      "other sections are read too",
      "[defaults]\nforks = 3\n[ssh_connection]\npipelining = True\n",
      { defaults: { forks: "3" }, ssh_connection: { pipelining: "True" } },
    ],
  ])("%s", (_name, text, expected) => {
    const problems: ConfigProblem[] = [];
    const ini = parseIni(text, "ansible.cfg", problems);
    expect(problems).toEqual([]);
    const got: Record<string, Record<string, string>> = {};
    for (const s of ini.sections.values())
      got[s.name] = Object.fromEntries([...s.entries].map(([k, e]) => [k, e.value]));
    if (ini.defaults.size > 0) got.DEFAULT = Object.fromEntries([...ini.defaults].map(([k, e]) => [k, e.value]));
    expect(got).toEqual(expected);
  });

  it("knows each value's line and columns", () => {
    const ini = parseIni("[defaults]\n\n  forks   =   10\n", "f", []);
    expect(ini.sections.get("defaults")!.entries.get("forks")).toEqual({
      key: "forks",
      value: "10",
      line: 3,
      keyCol: 3,
      valueCol: 15,
    });
  });

  it.each<[string, string, string[]]>([
    [
      "a setting before any section (once)",
      "forks = 3\nx = 1\n[defaults]\n",
      [
        "f:1:1: a setting before any [section] header. Put [defaults] on a line above it (settings belong to a section).",
      ],
    ],
    [
      "a line that is no setting",
      "[defaults]\nforks\n",
      [
        'f:2:1 [defaults]: "forks" is not a setting. Write key = value (or key: value); a comment line starts with # or ;.',
      ],
    ],
    [
      "an empty key",
      "[defaults]\n= 3\n",
      [
        'f:2:1 [defaults]: "= 3" is not a setting. Write key = value (or key: value); a comment line starts with # or ;.',
      ],
    ],
    [
      "a key twice",
      "[defaults]\nforks = 3\nFORKS = 4\n",
      ["f:3:1 forks: forks is set a second time in [defaults] (first at line 2). Keep one of the two lines."],
    ],
    [
      "a section twice",
      "[defaults]\n[x]\n[defaults]\n",
      [
        "f:3:1 [defaults]: section [defaults] is here a second time (first at line 1). Merge its settings into the first one.",
      ],
    ],
  ])("reports %s at its line, every problem at once", (_name, text, expected) => {
    const problems: ConfigProblem[] = [];
    parseIni(text, "f", problems);
    expect(problems.map(formatProblem)).toEqual(expected);
  });

  it("reports every bad line of a file in one go", () => {
    const problems: ConfigProblem[] = [];
    parseIni("[defaults]\nforks\nforks = 1\nforks = 2\ntimeout\n", "f", problems);
    expect(problems.map((p) => p.line)).toEqual([2, 4, 5]);
  });
});

describe("unquote (Ansible's, for string settings)", () => {
  it.each([
    ['"deploy"', "deploy"],
    ["'deploy'", "deploy"],
    ['"deploy', '"deploy'],
    ["\"de'", "\"de'"],
    ['"', '"'],
    ['"a\\"', '"a\\"'],
    ["plain", "plain"],
  ])("%s → %s", (input, output) => expect(unquote(input)).toBe(output));
});

describe("which ansible.cfg is read: Ansible's search, first found only", () => {
  const cfg = "[defaults]\n";
  it.each<[string, Record<string, string>, Partial<SettingsContext> & { worldWritable?: string[] }, string | null]>([
    ["./ansible.cfg", { "/repo/ansible.cfg": cfg, "/home/sre/.ansible.cfg": cfg }, {}, "/repo/ansible.cfg"],
    [
      "~/.ansible.cfg without one here",
      { "/home/sre/.ansible.cfg": cfg, "/etc/ansible/ansible.cfg": cfg },
      {},
      "/home/sre/.ansible.cfg",
    ],
    ["/etc/ansible/ansible.cfg last", { "/etc/ansible/ansible.cfg": cfg }, {}, "/etc/ansible/ansible.cfg"],
    ["none", {}, {}, null],
    [
      "$ANSIBLE_CONFIG first",
      { "/repo/ansible.cfg": cfg, "/cfg/team.cfg": cfg },
      { env: { ANSIBLE_CONFIG: "/cfg/team.cfg" } },
      "/cfg/team.cfg",
    ],
    [
      "$ANSIBLE_CONFIG relative to the current directory",
      { "/repo/conf/a.cfg": cfg },
      { env: { ANSIBLE_CONFIG: "conf/a.cfg" } },
      "/repo/conf/a.cfg",
    ],
    [
      "$ANSIBLE_CONFIG naming a directory: its ansible.cfg",
      { "/cfg/ansible.cfg": cfg },
      { env: { ANSIBLE_CONFIG: "/cfg" } },
      "/cfg/ansible.cfg",
    ],
    [
      "$ANSIBLE_CONFIG with ~ and $VAR",
      { "/home/sre/x/a.cfg": cfg },
      { env: { ANSIBLE_CONFIG: "~/$D/a.cfg", D: "x" } },
      "/home/sre/x/a.cfg",
    ],
    [
      "$ANSIBLE_CONFIG missing: the search goes on",
      { "/repo/ansible.cfg": cfg },
      { env: { ANSIBLE_CONFIG: "/nope.cfg" } },
      "/repo/ansible.cfg",
    ],
    [
      "./ansible.cfg in a world-writable directory is skipped",
      { "/repo/ansible.cfg": cfg, "/home/sre/.ansible.cfg": cfg },
      { worldWritable: ["/repo"] },
      "/home/sre/.ansible.cfg",
    ],
  ])("%s", (_name, files, more, expected) => {
    expect(findAnsibleConfig(ctx(files, more)).file).toBe(expected);
  });

  it("says when it skips ./ansible.cfg in a world-writable directory, as Ansible warns", () => {
    const found = findAnsibleConfig(ctx({ "/repo/ansible.cfg": cfg }, { worldWritable: ["/repo"] }));
    expect(found.file).toBeNull();
    expect(found.notes).toEqual([
      "ignoring /repo/ansible.cfg: /repo is world-writable, so anyone could have put it there (Ansible ignores it too). Point ANSIBLE_CONFIG at it to use it anyway",
    ]);
    const viaEnv = findAnsibleConfig(
      ctx({ "/repo/ansible.cfg": cfg }, { worldWritable: ["/repo"], env: { ANSIBLE_CONFIG: "/repo/ansible.cfg" } }),
    );
    expect(viaEnv).toEqual({ file: "/repo/ansible.cfg", notes: [], problems: [] });
  });

  it("refuses an $ANSIBLE_CONFIG Ansible could not read (neither .cfg nor .ini)", () => {
    const found = findAnsibleConfig(ctx({ "/x/ansible.conf": cfg }, { env: { ANSIBLE_CONFIG: "/x/ansible.conf" } }));
    expect(found.file).toBeNull();
    expect(found.problems.map(formatProblem)).toEqual([
      "/x/ansible.conf:1:1: ANSIBLE_CONFIG names a file Ansible cannot read as its configuration (only .cfg and .ini files are). Rename it to end in .cfg, or unset ANSIBLE_CONFIG.",
    ]);
  });
});

describe("which provision.cfg is read", () => {
  const cfg = "[defaults]\n";
  it.each<[string, Record<string, string>, Partial<SettingsContext> & { worldWritable?: string[] }, string | null]>([
    ["./provision.cfg", { "/repo/provision.cfg": cfg }, {}, "/repo/provision.cfg"],
    ["none", {}, {}, null],
    [
      "--config FILE first",
      { "/repo/provision.cfg": cfg, "/repo/ci.cfg": cfg },
      { configFlag: "ci.cfg", env: { PROVISION_CONFIG: "/x.cfg" } },
      "/repo/ci.cfg",
    ],
    [
      "then $PROVISION_CONFIG",
      { "/repo/provision.cfg": cfg, "/x.cfg": cfg },
      { env: { PROVISION_CONFIG: "/x.cfg" } },
      "/x.cfg",
    ],
    [
      "not ./provision.cfg in a world-writable directory",
      { "/repo/provision.cfg": cfg },
      { worldWritable: ["/repo"] },
      null,
    ],
    [
      "but --config names it explicitly",
      { "/repo/provision.cfg": cfg },
      { worldWritable: ["/repo"], configFlag: "provision.cfg" },
      "/repo/provision.cfg",
    ],
  ])("%s", (_name, files, more, expected) => {
    expect(findProvisionConfig(ctx(files, more)).file).toBe(expected);
  });

  it("refuses a --config or $PROVISION_CONFIG that cannot be read", () => {
    expect(findProvisionConfig(ctx({}, { configFlag: "nope.cfg" })).problems.map(formatProblem)).toEqual([
      "nope.cfg:1:1: --config names a file that cannot be read. Check the path (relative paths are from /repo) and its permissions.",
    ]);
    expect(findProvisionConfig(ctx({}, { env: { PROVISION_CONFIG: "/repo" } })).problems.map(formatProblem)).toEqual([
      "/repo:1:1: PROVISION_CONFIG names a file that cannot be read (it is a directory). Check the path (relative paths are from /repo) and its permissions.",
    ]);
  });
});

describe("settings: sources and precedence", () => {
  it("takes Ansible's names from ansible.cfg, resolving paths as Ansible does (from the file's directory)", () => {
    const cfg = [
      "[defaults]",
      "inventory = ./inv.yml, ~/shared/hosts.ini, $SITE/extra, {{CWD}}/local.yml,",
      "forks = 20",
      'remote_user = "deploy"   ; Ansible unquotes strings',
      "private_key_file = keys/deploy_ed25519",
      "host_key_checking = False",
      "timeout = 7",
      "pipelining = True",
    ].join("\n");
    expect(
      values(ctx({ "/cfg/ansible.cfg": cfg }, { env: { ANSIBLE_CONFIG: "/cfg/ansible.cfg", SITE: "/srv" } })),
    ).toEqual({
      inventory: "/cfg/inv.yml | /home/sre/shared/hosts.ini | /srv/extra | /repo/local.yml @/cfg/ansible.cfg:2",
      forks: "20 @/cfg/ansible.cfg:3",
      user: "deploy @/cfg/ansible.cfg:4",
      private_key: "/cfg/keys/deploy_ed25519 @/cfg/ansible.cfg:5",
      accept_new_host_keys: "False @/cfg/ansible.cfg:6",
      connect_timeout: "7 @/cfg/ansible.cfg:7",
    });
  });

  it("[ssh_connection] beats [defaults] for host_key_checking and timeout, [DEFAULT] fills in, as in Ansible", () => {
    const cfg =
      "[DEFAULT]\nforks = 4\n[defaults]\ntimeout = 7\nhost_key_checking = True\n[ssh_connection]\ntimeout = 9\nhost_key_checking = no\n";
    expect(values(ctx({ "/repo/ansible.cfg": cfg }))).toEqual({
      forks: "4 @/repo/ansible.cfg:2",
      connect_timeout: "9 @/repo/ansible.cfg:7",
      accept_new_host_keys: "no @/repo/ansible.cfg:8",
    });
  });

  it("an empty value is no value", () => {
    expect(values(ctx({ "/repo/ansible.cfg": "[defaults]\nremote_user =\nforks=\n" }))).toEqual({});
    expect(values(ctx({ "/repo/provision.cfg": "[defaults]\nforks =\n" }))).toEqual({});
  });

  it("lowest first: ansible.cfg < ANSIBLE_* < provision.cfg", () => {
    const files = {
      "/repo/ansible.cfg": "[defaults]\ninventory = ansible-inv.yml\nforks = 5\nremote_user = ansible\ntimeout = 30\n",
      "/repo/provision.cfg": "[defaults]\nforks = 40\nknown_hosts = ssh/known_hosts, /etc/ssh/extra_known_hosts\n",
    };
    expect(
      values(
        ctx(files, { env: { ANSIBLE_REMOTE_USER: "ci", ANSIBLE_FORKS: "9", ANSIBLE_INVENTORY: "env/a.yml,/b.yml" } }),
      ),
    ).toEqual({
      inventory: "/repo/env/a.yml | /b.yml @ANSIBLE_INVENTORY",
      forks: "40 @/repo/provision.cfg:2",
      user: "ci @ANSIBLE_REMOTE_USER",
      connect_timeout: "30 @/repo/ansible.cfg:5",
      known_hosts: "/repo/ssh/known_hosts | /etc/ssh/extra_known_hosts @/repo/provision.cfg:3",
    });
  });

  it("ANSIBLE_SSH_* beats ANSIBLE_*, as the ssh plugin lists them", () => {
    expect(
      values(ctx({}, { env: { ANSIBLE_TIMEOUT: "5", ANSIBLE_SSH_TIMEOUT: "6", ANSIBLE_HOST_KEY_CHECKING: "0" } })),
    ).toEqual({ connect_timeout: "6 @ANSIBLE_SSH_TIMEOUT", accept_new_host_keys: "0 @ANSIBLE_HOST_KEY_CHECKING" });
  });

  it("provision.cfg paths are relative to its own directory, and quotes are optional", () => {
    const cfg =
      "[defaults]\ninventory = \"inventories/prod\", inventories/extra.yml\nplaybook = 'site.yaml'\nstate_dir = ~/provision-runs\nprivate_key = keys/id\n";
    expect(values(ctx({ "/etc/team/provision.cfg": cfg }, { configFlag: "/etc/team/provision.cfg" }))).toEqual({
      inventory: "/etc/team/inventories/prod | /etc/team/inventories/extra.yml @/etc/team/provision.cfg:2",
      playbook: "/etc/team/site.yaml @/etc/team/provision.cfg:3",
      state_dir: "/home/sre/provision-runs @/etc/team/provision.cfg:4",
      private_key: "/etc/team/keys/id @/etc/team/provision.cfg:5",
    });
  });

  it("names the files read, lowest first", () => {
    const s = loadSettings(ctx({ "/repo/ansible.cfg": "[defaults]\n", "/repo/provision.cfg": "[defaults]\n" }));
    expect(s.files).toEqual([
      { file: "/repo/ansible.cfg", source: "ansible.cfg" },
      { file: "/repo/provision.cfg", source: "provision.cfg" },
    ]);
  });

  it("says which of Ansible's connection settings it does not read", () => {
    const s = loadSettings(
      ctx({
        "/repo/ansible.cfg":
          "[defaults]\nremote_port = 2222\n[ssh_connection]\nssh_common_args = -o ProxyJump=bastion\nssh_args = -C\n",
      }),
    );
    expect(s.connectionNotes).toEqual([
      "/repo/ansible.cfg:2: provision does not read remote_port; set ansible_port in the inventory (group_vars/all) or Port in ssh_config",
      "/repo/ansible.cfg:4: provision does not read [ssh_connection] ssh_common_args; set ansible_ssh_common_args in the inventory (group_vars/all)",
    ]);
  });

  it("reports every problem of provision.cfg at once: line, key, problem, fix, with did-you-mean", () => {
    const cfg = [
      "[defaults]",
      "forks = 10",
      "knwon_hosts = a",
      "remote_user = deploy",
      "yes = true",
      "connect-timeout = 3",
      "colour_scheme = dark",
      "[DEFAULT]",
      "forks = 3",
      "[default]",
      "x = 1",
    ].join("\n");
    const s = loadSettings(ctx({ "/repo/provision.cfg": cfg }));
    expect(s.problems.map(formatProblem)).toEqual([
      '/repo/provision.cfg:3:1 knwon_hosts: unknown key "knwon_hosts". Did you mean "known_hosts"?',
      '/repo/provision.cfg:4:1 remote_user: unknown key "remote_user". Write user = … (remote_user is ansible.cfg\'s name for it).',
      '/repo/provision.cfg:5:1 yes: unknown key "yes". Remove it: yes is chosen on each call, with its flag, never for every call in a file.',
      '/repo/provision.cfg:6:1 connect-timeout: unknown key "connect-timeout". Did you mean "connect_timeout"?',
      expect.stringMatching(
        /^\/repo\/provision\.cfg:7:1 colour_scheme: unknown key "colour_scheme"\. The keys are: inventory, playbook, forks, /,
      ),
      "/repo/provision.cfg:9:1 forks: provision.cfg has no [DEFAULT] section. Put the setting under [defaults].",
      "/repo/provision.cfg:10:1 [default]: unknown section [default]. Did you mean [defaults]?",
    ]);
  });

  it("a broken ansible.cfg is an error, as it is for Ansible", () => {
    const s = loadSettings(ctx({ "/repo/ansible.cfg": "forks = 3\n" }));
    expect(s.problems.map(formatProblem)).toEqual([
      "/repo/ansible.cfg:1:1: a setting before any [section] header. Put [defaults] on a line above it (settings belong to a section).",
    ]);
    expect(s.files).toEqual([]);
  });
});

/** The options of `provision run`, as cli.ts declares them (parsers with the same rules). */
function runCommand(): Command {
  const positiveInt = (name: string) => (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
    return n;
  };
  const collect = (v: string, prev: string[]) => [...prev, v];
  const cmd = new Command("run")
    .exitOverride()
    .argument("[inventory...]")
    .option("-i, --inventory <source>", "", collect, [] as string[])
    .option("--known-hosts <file>", "", collect, [] as string[])
    .option("--accept-new-host-keys", "", false)
    .option("--connect-timeout <seconds>", "", positiveInt("--connect-timeout"), 10)
    .addOption(new Option("--ssh-client <client>").choices(["auto", "ssh2", "openssh"]).default("auto"))
    .option("-u, --user <name>")
    .option("--private-key <file>")
    .option("-p, --playbook <file>")
    .option("-f, --forks <n>", "", positiveInt("--forks"), 50)
    .option("--batches <list>")
    .option("--max-fail-total <n|pct>")
    .option("--pause <seconds|prompt>")
    .option("--plan <file>")
    .option("-v, --verbose", "", false)
    .option("--no-color")
    .action(() => undefined);
  return cmd;
}

function parsed(args: string[]): Command {
  const cmd = runCommand();
  cmd.parse(args, { from: "user" });
  return cmd;
}

describe("applying settings to a command's options", () => {
  const files = (ansible: string, own = "") => ({
    "/repo/ansible.cfg": `[defaults]\n${ansible}`,
    ...(own ? { "/repo/provision.cfg": `[defaults]\n${own}` } : {}),
  });

  it("fills every option the command line left at its default, parsed by the flag's own rules", () => {
    const cmd = parsed([]);
    const s = loadSettings(
      ctx(
        files(
          "inventory = a.yml,b.yml\nforks = 20\nremote_user = deploy\nprivate_key_file = k\nhost_key_checking = False\ntimeout = 7\n",
          "known_hosts = kh1, kh2\nssh_client = openssh\nbatches = 1,10%,100%\npause = prompt\nmax_fail_total = 5%\n",
        ),
      ),
    );
    const r = applyToCommand(cmd, s);
    expect(r.problems).toEqual([]);
    expect(cmd.opts()).toEqual({
      inventory: ["/repo/a.yml", "/repo/b.yml"],
      knownHosts: ["/repo/kh1", "/repo/kh2"],
      acceptNewHostKeys: true,
      connectTimeout: 7,
      sshClient: "openssh",
      user: "deploy",
      privateKey: "/repo/k",
      forks: 20,
      batches: "1,10%,100%",
      maxFailTotal: "5%",
      pause: "prompt",
      verbose: false,
      color: true,
    });
    expect(cmd.getOptionValueSource("forks")).toBe("config");
    expect(r.notes).toEqual([
      "/repo/ansible.cfg:6: host_key_checking = False: provision never turns host key checking off; it records the keys of hosts not yet in known_hosts (as --accept-new-host-keys) and still refuses a host whose key changed",
    ]);
  });

  it("a flag always wins, and a list flag replaces the config's list", () => {
    const cmd = parsed(["-f", "3", "--known-hosts", "mine", "-i", "x.yml", "--accept-new-host-keys"]);
    const s = loadSettings(
      ctx(files("forks = 20\ninventory = a.yml\nhost_key_checking = True\n", "known_hosts = kh1\n")),
    );
    expect(applyToCommand(cmd, s).problems).toEqual([]);
    expect(cmd.opts()).toMatchObject({ forks: 3, knownHosts: ["mine"], inventory: ["x.yml"], acceptNewHostKeys: true });
  });

  it("a value a flag overrides is never read, so it cannot fail", () => {
    const cmd = parsed(["-f", "3"]);
    expect(applyToCommand(cmd, loadSettings(ctx(files("forks = many\n")))).problems).toEqual([]);
  });

  it("the inventory only when no inventory argument was given, and never under run --plan", () => {
    const s = loadSettings(ctx(files("inventory = a.yml\n")));
    const withArg = parsed(["given.yml"]);
    applyToCommand(withArg, s);
    expect(withArg.opts().inventory).toEqual([]);
    const withPlan = parsed(["--plan", "plan.json"]);
    applyToCommand(withPlan, s);
    expect(withPlan.opts().inventory).toEqual([]);
    // explain takes -i but no inventory arguments: without -i it prints the roles' reference.
    const explain = new Command("explain").option("-i, --inventory <s>", "", (v, p: string[]) => [...p, v], []);
    explain.parse([], { from: "user" });
    applyToCommand(explain, s);
    expect(explain.opts().inventory).toEqual([]);
  });

  it.each<[string, string, string]>([
    [
      "forks = 0",
      "",
      '/repo/ansible.cfg:2:9 forks: "0" is not a valid value: --forks must be a whole number of at least 1. Write a value --forks accepts, or remove the line to use the default (50).',
    ],
    [
      "forks = 10 # ten",
      "",
      '/repo/ansible.cfg:2:9 forks: "10 # ten" is not a valid value: --forks must be a whole number of at least 1; a # inside a line starts no comment in these files (; after a space does). Write a value --forks accepts, or remove the line to use the default (50).',
    ],
    [
      "host_key_checking = maybe",
      "",
      '/repo/ansible.cfg:2:21 host_key_checking: "maybe" is not a boolean. Write true or false (yes/no, on/off, 1/0 too), or remove the line to use the default.',
    ],
    [
      "",
      "ssh_client = putty",
      '/repo/provision.cfg:2:14 ssh_client: "putty" is not one of auto, ssh2, openssh. Write one of auto, ssh2, openssh, as --ssh-client takes, or remove the line to use Ansible\'s setting or the default (auto).',
    ],
    [
      "",
      "batches = 1,0,100%",
      "/repo/provision.cfg:2:11 batches: a batch of 0 hosts. Use sizes of at least 1, e.g. 1,10%,100%, or remove the line to use Ansible's setting or the default.",
    ],
    [
      "",
      "max_fail_total = lots",
      '/repo/provision.cfg:2:18 max_fail_total: "lots" is not a count (3) or a percentage (10%). Write a count (3) or a percentage (10%), or remove the line to use Ansible\'s setting or the default.',
    ],
    [
      "",
      "pause = 1m",
      '/repo/provision.cfg:2:9 pause: "1m" is neither seconds nor "prompt". Write seconds (30) or prompt, or remove the line to use Ansible\'s setting or the default.',
    ],
    [
      "",
      "connect_timeout = 5\n  10",
      "/repo/provision.cfg:2:19 connect_timeout: the value goes on over 2 lines: a line indented under a setting continues its value. Put the value on one line, and start the next setting at the left margin, or remove the line to use Ansible's setting or the default (10).",
    ],
    [
      "remote_user = bad user",
      "",
      '/repo/ansible.cfg:2:15 remote_user: "bad user" is not a valid value: --user: "bad user" is not a login name. Write a value --user accepts, or remove the line to use the default.',
    ],
  ])("refuses %j%j with the file, line, key, problem and fix", (ansible, own, expected) => {
    const cmd = parsed([]);
    cmd.options
      .find((o) => o.long === "--user")!
      .argParser((v: string) => {
        if (/\s/.test(v)) throw new InvalidArgumentError(`--user: ${JSON.stringify(v)} is not a login name`);
        return v;
      });
    const r = applyToCommand(cmd, loadSettings(ctx(files(ansible, own))));
    expect(r.problems.map(formatProblem)).toEqual([expected]);
  });

  it("an ANSIBLE_* variable's problem names the variable", () => {
    const r = applyToCommand(parsed([]), loadSettings(ctx({}, { env: { ANSIBLE_FORKS: "x" } })));
    expect(r.problems.map(formatProblem)).toEqual([
      'ANSIBLE_FORKS:1:1: "x" is not a valid value: --forks must be a whole number of at least 1. Write a value --forks accepts, or unset ANSIBLE_FORKS.',
    ]);
  });

  it.each<[string, boolean]>([
    ["False", true],
    ["false", true],
    ["no", true],
    ["NO", true],
    ["off", true],
    ["0", true],
    ["n", true],
    ["True", false],
    ["yes", false],
    ["On", false],
    ["1", false],
    ["y", false],
  ])("host_key_checking = %s → accept new host keys: %s", (word, accept) => {
    const cmd = parsed([]);
    applyToCommand(cmd, loadSettings(ctx(files(`host_key_checking = ${word}\n`))));
    expect(cmd.opts().acceptNewHostKeys).toBe(accept);
  });

  it("writes notes, the files used with -v, every error and a summary; false on errors", () => {
    const lines: string[] = [];
    const c = ctx(files("forks = x\nremote_port = 2\nhost_key_checking = no\n", "ssh_client = putty\n"));
    const cmd = parsed(["-v", "-i", "inv.yml"]);
    expect(applySettings(cmd, undefined, (l) => lines.push(l), c)).toBe(false);
    expect(lines).toEqual([
      "note: /repo/ansible.cfg:3: provision does not read remote_port; set ansible_port in the inventory (group_vars/all) or Port in ssh_config",
      "note: /repo/ansible.cfg:4: host_key_checking = no: provision never turns host key checking off; it records the keys of hosts not yet in known_hosts (as --accept-new-host-keys) and still refuses a host whose key changed",
      "using /repo/ansible.cfg as Ansible's config file: host_key_checking",
      "using /repo/provision.cfg as provision's config file: nothing in it applies here",
      expect.stringMatching(/^\/repo\/ansible\.cfg:2:9 forks: "x" is not a valid value/),
      expect.stringMatching(/^\/repo\/provision\.cfg:2:14 ssh_client: "putty" is not one of/),
      "2 errors in the configuration; nothing was sent to any host.",
    ]);
  });

  it("a command that connects says which of Ansible's connection settings it does not read", () => {
    const lines: string[] = [];
    expect(applySettings(parsed([]), undefined, (l) => lines.push(l), ctx(files("remote_port = 2222\n")))).toBe(true);
    expect(lines).toEqual([
      "note: /repo/ansible.cfg:2: provision does not read remote_port; set ansible_port in the inventory (group_vars/all) or Port in ssh_config",
    ]);
    const lint = new Command("lint").option("-p, --playbook <file>");
    lines.length = 0;
    expect(applySettings(lint, undefined, (l) => lines.push(l), ctx(files("remote_port = 2222\n")))).toBe(true);
    expect(lines).toEqual([]);
  });

  it("reads nothing for a command without configurable options", () => {
    const show = new Command("show").option("--json").option("--no-color");
    const c = ctx({ "/repo/ansible.cfg": "broken\n" });
    expect(applySettings(show, undefined, () => undefined, c)).toBe(true);
  });

  it("names options as provision.cfg does: the long flag, - as _; negations and per-call flags are not settings", () => {
    const keys = runCommand()
      .options.map(settingKeyOf)
      .filter((k): k is SettingKey => k !== undefined);
    expect(keys).toEqual([
      "inventory",
      "known_hosts",
      "accept_new_host_keys",
      "connect_timeout",
      "ssh_client",
      "user",
      "private_key",
      "playbook",
      "forks",
      "batches",
      "max_fail_total",
      "pause",
    ]);
    expect(Object.keys(SETTING_KEYS)).toEqual(expect.arrayContaining(keys));
  });
});
