import { homedir } from "node:os";
import { join } from "node:path";
import { ROLES } from "../../src/roles.js";
import { describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { loadInventory } from "../../src/inventory/load.js";
import { hasErrors, loadConfig } from "../../src/load.js";
import { loadPlaybook } from "../../src/playbook.js";
import { resolveTargets, type ConnectionSettings, type ParamSource, type ResolvedHost } from "../../src/resolve.js";
import { fixture, posIn } from "./_helpers.js";

const inv = (name: string) => fixture("inventory", name, "hosts.yaml");
const pb = (name: string) => fixture("playbooks", `${name}.yaml`);

function hostOf(hosts: ResolvedHost[], name: string): ResolvedHost {
  const h = hosts.find((x) => x.name === name);
  if (!h) throw new Error(`host ${name} not resolved; got ${hosts.map((x) => x.name).join(", ")}`);
  return h;
}

function roleOf(hosts: ResolvedHost[], hostName: string, role: string) {
  const r = hostOf(hosts, hostName).roles.find((x) => x.role.name === role);
  if (!r) throw new Error(`role ${role} not on ${hostName}`);
  return r;
}

describe("loadPlaybook", () => {
  it("loads plays with their roles, params and positions", () => {
    const problems: ConfigProblem[] = [];
    const plays = loadPlaybook(pb("site"), problems)!;
    expect(problems).toEqual([]);
    expect(plays).toHaveLength(1);
    const [play] = plays;
    expect(play).toMatchObject({ name: "tune everything", hosts: "all", become: true, index: 0 });
    expect(play!.source.file).toBe(pb("site"));
    expect(play!.roles.map((r) => [r.role.name, r.params, r.path])).toEqual([
      ["ephemeral-ports", {}, [0, "roles", 0]],
      ["tw-reuse", { tcp_timestamps: 1 }, [0, "roles", 1]],
    ]);
  });

  it("names an unnamed play by its position and leaves become unset", () => {
    const plays = loadPlaybook(pb("plain"), [])!;
    expect(plays[0]).toMatchObject({ name: "play 1", become: undefined });
  });

  it.each<[string, string, string, string]>([
    ["ephemeral-port", "[0].roles[0]", "    - ephemeral-port", 'did you mean "ephemeral-ports"?'],
    ["tw_reuse", "[0].roles[1].role", "role: tw_reuse", 'did you mean "tw-reuse"?'],
    ["sysctl-magic", "[0].roles[2]", "    - sysctl-magic", `use one of: ${ROLES.map((r) => r.name).join(", ")}`],
  ])("reports unknown role %j where it is written, with a suggestion", (name, keyPath, needle, fix) => {
    const problems: ConfigProblem[] = [];
    const plays = loadPlaybook(pb("unknown-role"), problems)!;
    const found = problems.find((p) => p.keyPath === keyPath);
    expect(found).toEqual({
      file: pb("unknown-role"),
      ...posIn(pb("unknown-role"), needle, name),
      keyPath,
      severity: "error",
      problem: `unknown role "${name}"`,
      fix,
    });
    expect(problems).toHaveLength(3);
    // the known role is kept
    expect(plays[0]!.roles.map((r) => r.role.name)).toEqual(["tw-reuse"]);
  });

  it("validates role params against the role's schema, located in the playbook", () => {
    const file = pb("bad-params-only");
    const problems: ConfigProblem[] = [];
    const plays = loadPlaybook(file, problems)!;
    expect(problems).toEqual([
      {
        file,
        ...posIn(file, "port_range_start: 80", "80"),
        keyPath: "[0].roles[0].params.port_range_start",
        severity: "error",
        problem: "80 is out of range (must be >= 1024)",
        fix: "use a port between 1024 and 65534, below port_range_end",
      },
      {
        file,
        ...posIn(file, "tcp_tw_recycle: 1", "tcp_tw_recycle"),
        keyPath: "[0].roles[1].params.tcp_tw_recycle",
        severity: "error",
        problem:
          "tcp_tw_recycle is refused: it drops SYNs from clients behind NAT (their timestamps are not monotonic per address) and was removed in Linux 4.12",
        fix: "remove it; for outbound TIME_WAIT churn use the tw-reuse role (tcp_tw_reuse: 1 with tcp_timestamps: 1)",
      },
    ]);
    expect(plays[0]!.roles).toEqual([]);
  });

  // BUG: a schema error anywhere in the playbook (here `become: "yes"`) returns before any role params are checked.
  it("reports every error of the playbook at once, including role params", () => {
    const file = pb("bad-params");
    const problems: ConfigProblem[] = [];
    loadPlaybook(file, problems);
    expect(problems.map((p) => p.keyPath).sort()).toEqual([
      "[0].become",
      "[0].roles[0].params.port_range_start",
      "[0].roles[1].params.tcp_tw_recycle",
    ]);
  });

  it.each<[string, Array<Partial<ConfigProblem>>]>([
    [
      "not-a-list",
      [
        {
          line: 1,
          col: 1,
          keyPath: "",
          problem: 'expected a list, got a mapping {"hosts":"all","roles":["tw-reuse"]}',
          fix: "write a list of plays, each with `hosts:` and `roles:`",
        },
      ],
    ],
    [
      "missing-keys",
      [
        { line: 1, col: 3, keyPath: "[0]", problem: 'missing required key "roles"', fix: 'add "roles:" here' },
        {
          line: 5,
          col: 7,
          keyPath: "[1].roles[0]",
          problem: 'missing required key "role"',
          fix: "write a role name, or a mapping with `role:` and `params:`",
        },
      ],
    ],
  ])("rejects the malformed playbook %s", (name, expected) => {
    const problems: ConfigProblem[] = [];
    expect(loadPlaybook(pb(name), problems)).toBeNull();
    expect(problems).toEqual(expected.map((e) => ({ file: pb(name), severity: "error", ...e })));
  });
});

describe("loadConfig: params precedence and provenance", () => {
  const { hosts, problems } = loadConfig(inv("resolve"), pb("site"), undefined);
  const hostsFile = inv("resolve");
  const site = pb("site");

  it("resolves every host in inventory order without problems", () => {
    expect(problems).toEqual([]);
    expect(hosts.map((h) => h.name)).toEqual(["web01", "web02", "db01"]);
    for (const h of hosts) expect(h.roles.map((r) => r.role.name)).toEqual(["ephemeral-ports", "tw-reuse"]);
  });

  type Row = [
    host: string,
    role: string,
    key: string,
    value: unknown,
    source: Omit<ParamSource, "line" | "col"> & { at?: [string, string] },
  ];
  it.each<Row>([
    // role default: located at the role entry in the playbook
    [
      "web01",
      "ephemeral-ports",
      "port_range_end",
      65535,
      { kind: "default", file: site, keyPath: "[0].roles[0]", at: ["- ephemeral-ports", "ephemeral-ports"] },
    ],
    [
      "web01",
      "tw-reuse",
      "tcp_tw_reuse",
      1,
      { kind: "default", file: site, keyPath: "[0].roles[1]", at: ["role: tw-reuse", "role"] },
    ],
    [
      "db01",
      "tw-reuse",
      "tcp_max_tw_buckets",
      null,
      { kind: "default", file: site, keyPath: "[0].roles[1]", at: ["role: tw-reuse", "role"] },
    ],
    // all < group: web's 20 beats all's 30; db01 only has all's
    [
      "web01",
      "tw-reuse",
      "tcp_fin_timeout",
      20,
      {
        kind: "group",
        name: "web",
        file: hostsFile,
        keyPath: "all.children.web.vars.tw_reuse.tcp_fin_timeout",
        at: ["tcp_fin_timeout: 20", "20"],
      },
    ],
    [
      "db01",
      "tw-reuse",
      "tcp_fin_timeout",
      30,
      {
        kind: "group",
        name: "all",
        file: hostsFile,
        keyPath: "all.vars.tw_reuse.tcp_fin_timeout",
        at: ["tcp_fin_timeout: 30", "30"],
      },
    ],
    // group < host
    [
      "web01",
      "tw-reuse",
      "tcp_max_tw_buckets",
      300000,
      {
        kind: "host",
        name: "web01",
        file: hostsFile,
        keyPath: "all.children.web.hosts.web01.tw_reuse.tcp_max_tw_buckets",
        at: ["tcp_max_tw_buckets: 300000", "300000"],
      },
    ],
    [
      "web02",
      "tw-reuse",
      "tcp_max_tw_buckets",
      200000,
      {
        kind: "group",
        name: "web",
        file: hostsFile,
        keyPath: "all.children.web.vars.tw_reuse.tcp_max_tw_buckets",
        at: ["tcp_max_tw_buckets: 200000", "200000"],
      },
    ],
    [
      "web01",
      "ephemeral-ports",
      "port_range_start",
      2048,
      {
        kind: "group",
        name: "web",
        file: hostsFile,
        keyPath: "all.children.web.vars.ephemeral_ports.port_range_start",
        at: ["port_range_start: 2048", "2048"],
      },
    ],
    // group_vars/ and host_vars/ files
    [
      "db01",
      "ephemeral-ports",
      "port_range_start",
      10000,
      {
        kind: "group",
        name: "db",
        file: fixture("inventory", "resolve", "group_vars", "db.yaml"),
        keyPath: "ephemeral_ports.port_range_start",
        at: ["port_range_start: 10000", "10000"],
      },
    ],
    [
      "db01",
      "ephemeral-ports",
      "reserved_ports",
      [5432, "9000-9100"],
      {
        kind: "group",
        name: "db",
        file: fixture("inventory", "resolve", "group_vars", "db.yaml"),
        keyPath: "ephemeral_ports.reserved_ports",
        at: ["reserved_ports:", "["],
      },
    ],
    [
      "web02",
      "ephemeral-ports",
      "port_range_end",
      60001,
      {
        kind: "host",
        name: "web02",
        file: fixture("inventory", "resolve", "host_vars", "web02.yaml"),
        keyPath: "ephemeral_ports.port_range_end",
        at: ["port_range_end: 60001", "60001"],
      },
    ],
    // playbook params beat everything
    [
      "web01",
      "tw-reuse",
      "tcp_timestamps",
      1,
      { kind: "playbook", file: site, keyPath: "[0].roles[1].params.tcp_timestamps", at: ["tcp_timestamps: 1", "1"] },
    ],
  ])("%s %s.%s = %j", (host, role, key, value, source) => {
    const r = roleOf(hosts, host, role);
    expect(r.params[key]).toEqual(value);
    const { at, ...rest } = source;
    const file = rest.file;
    expect(r.sources[key]).toEqual({ ...rest, ...posIn(file, at![0], at![1]) });
  });

  it("gives every param of a role a value and a source", () => {
    for (const h of hosts) {
      for (const r of h.roles) {
        expect(Object.keys(r.params).sort()).toEqual(Object.keys(r.role.schema.properties).sort());
        expect(Object.keys(r.sources).sort()).toEqual(Object.keys(r.role.schema.properties).sort());
      }
    }
  });

  it("shares no mutable value between hosts: params merged once for equal layers are frozen to the leaves", () => {
    const a = roleOf(hosts, "web01", "ephemeral-ports").params.reserved_ports as unknown[];
    expect(a).toEqual([]);
    expect(Object.isFrozen(a)).toBe(true);
    expect(() => a.push(1)).toThrow(TypeError);
    for (const h of hosts) for (const r of h.roles) expect(Object.isFrozen(r.params)).toBe(true);
  });

  // What the inventory leaves unset (port here) stays unset: ssh_config or OpenSSH's default fills it when the route is resolved.
  it.each<[string, ConnectionSettings, boolean]>([
    [
      "web01",
      {
        kind: "ssh",
        host: "10.0.0.1",
        port: 2222,
        user: "deploy",
        privateKeyFile: join(fixture("inventory", "resolve"), "keys", "id_ed25519"),
        sshArgs: [],
        openSshOnlyOptions: [],
      },
      true,
    ],
    [
      "web02",
      {
        kind: "ssh",
        host: "web02",
        port: undefined,
        user: "deploy",
        privateKeyFile: join(homedir(), ".ssh", "web02_key"),
        sshArgs: [],
        openSshOnlyOptions: [],
      },
      true,
    ],
    [
      "db01",
      {
        kind: "ssh",
        host: "db01",
        port: undefined,
        user: "postgres",
        privateKeyFile: "/etc/provision/db_key",
        sshArgs: [],
        openSshOnlyOptions: [],
      },
      false,
    ],
  ])("connects to %s with %j, become=%s", (name, connection, become) => {
    const h = hostOf(hosts, name);
    expect(h.connection).toEqual(connection);
    expect(h.become).toBe(become);
  });

  it("resolves a relative key path from the inventory's directory, whatever the cwd", () => {
    const relative = loadConfig(join("test", "fixtures", "inventory", "resolve", "hosts.yaml"), pb("site"), "web01");
    expect(hostOf(relative.hosts, "web01").connection.privateKeyFile).toBe(
      join(fixture("inventory", "resolve"), "keys", "id_ed25519"),
    );
  });

  it("leaves user, port and key to ssh_config when the inventory sets none", () => {
    const { hosts: h } = resolveDespiteErrors(inv("resolve-cross"), pb("plain"));
    expect(hostOf(h, "web02").connection).toEqual({
      kind: "ssh",
      host: "web02",
      port: undefined,
      user: undefined,
      privateKeyFile: undefined,
      sshArgs: [],
      openSshOnlyOptions: [],
    });
    expect(hostOf(h, "web02").become).toBe(false);
  });
});

describe("loadConfig: group precedence reaches role params", () => {
  const { hosts, problems } = loadConfig(inv("precedence"), pb("plain"), undefined);
  const base = fixture("inventory", "precedence");

  it("has no problems", () => {
    expect(problems).toEqual([]);
  });

  it.each<[string, string, string, unknown, string, string]>([
    ["web01", "tw-reuse", "tcp_fin_timeout", 45, "host", `${base}/host_vars/web01.yml`],
    ["web02", "tw-reuse", "tcp_fin_timeout", 40, "host", `${base}/hosts.yaml`],
    ["web01", "tw-reuse", "tcp_max_tw_buckets", 30000, "group", `${base}/group_vars/web.yaml`],
    ["db01", "tw-reuse", "tcp_fin_timeout", 60, "group", `${base}/group_vars/db/20-extra.yml`],
    ["db01", "tw-reuse", "tcp_max_tw_buckets", 10000, "group", `${base}/hosts.yaml`],
    ["web01", "ephemeral-ports", "port_range_start", 5000, "group", `${base}/hosts.yaml`],
  ])("%s %s.%s = %j from a %s layer in %s", (host, role, key, value, kind, file) => {
    const r = roleOf(hosts, host, role);
    expect(r.params[key]).toEqual(value);
    expect(r.sources[key]).toMatchObject({ kind, file });
  });

  it("takes same-depth groups alphabetically: beta (later) beats alpha", () => {
    expect(roleOf(hosts, "web01", "ephemeral-ports").sources.port_range_start).toMatchObject({
      name: "beta",
      keyPath: "all.children.beta.vars.ephemeral_ports.port_range_start",
    });
  });

  it.each([
    ["web01", { host: "10.0.0.11", port: undefined, user: "from-all" }],
    ["db01", { host: "db01", port: 2202, user: "db-file-extra" }],
  ])("merges connection vars of %s across layers", (name, connection) => {
    expect(hostOf(hosts, name).connection).toMatchObject(connection);
  });
});

describe("loadConfig: playbook params over host vars", () => {
  it("uses the playbook's values for every host of the play only", () => {
    const { hosts, problems } = loadConfig(inv("resolve"), pb("web-override"), undefined);
    expect(problems).toEqual([]);
    expect(hosts.map((h) => h.name)).toEqual(["web01", "web02"]);
    const r = roleOf(hosts, "web02", "ephemeral-ports");
    expect(r.params).toMatchObject({ port_range_start: 4096, port_range_end: 65001 });
    expect(r.sources.port_range_end).toEqual({
      kind: "playbook",
      file: pb("web-override"),
      ...posIn(pb("web-override"), "port_range_end: 65001", "65001"),
      keyPath: "[0].roles[0].params.port_range_end",
    });
    expect(hostOf(hosts, "web02").become).toBe(false);
  });
});

describe("loadConfig: --limit", () => {
  it.each<[string | undefined, string[]]>([
    [undefined, ["web01", "web02", "db01"]],
    ["web01", ["web01"]],
    ["web", ["web01", "web02"]],
    ["web:!web01", ["web02"]],
    ["db01,web02", ["web02", "db01"]],
    ["all:&db", ["db01"]],
  ])("--limit %j selects %j", (limit, names) => {
    const { hosts, problems } = loadConfig(inv("resolve"), pb("site"), limit);
    expect(problems).toEqual([]);
    expect(hosts.map((h) => h.name)).toEqual(names);
  });

  it("intersects the limit with the play's hosts", () => {
    const { hosts } = loadConfig(inv("resolve"), pb("web-override"), "db01,web01");
    expect(hosts.map((h) => h.name)).toEqual(["web01"]);
  });

  it("reports a limit that names nothing, as coming from --limit", () => {
    // every host is still resolved, so role checks report in the same run; the error stops any connection
    const { problems } = loadConfig(inv("resolve"), pb("site"), "nosuch");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: "--limit", line: 1, col: 1, keyPath: "", severity: "error" });
    expect(problems[0]!.problem).toContain('"nosuch"');
  });

  it("reports a play whose hosts pattern names nothing at its hosts: line", () => {
    const { problems } = loadConfig(inv("resolve"), pb("unknown-group"), undefined);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      file: pb("unknown-group"),
      ...posIn(pb("unknown-group"), "hosts: webz", "webz"),
      keyPath: "[0].hosts",
      severity: "error",
    });
    expect(problems[0]!.problem).toContain('"webz"');
    expect(problems[0]!.fix).toContain("web");
  });
});

describe("loadConfig: cross-field role rules", () => {
  it("locates port_range_start >= port_range_end at the playbook param, once for all hosts", () => {
    const file = pb("start-above-end");
    const { problems } = loadConfig(inv("resolve"), file, undefined);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      file,
      ...posIn(file, "port_range_start: 60000", "60000"),
      keyPath: "[0].roles[0].params.port_range_start",
      severity: "error",
      fix: "make port_range_start lower than port_range_end, e.g. 1024 and 65535",
    });
    expect(problems[0]!.problem).toMatch(/^port_range_start 60000 is not below port_range_end 50001 \(host \w+\)$/);
    expect(hasErrors(problems)).toBe(true);
  });

  it("locates tcp_tw_reuse 1 with tcp_timestamps 0 at the tcp_timestamps param", () => {
    const file = pb("timestamps-off");
    const { problems } = loadConfig(inv("resolve"), file, undefined);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      file,
      ...posIn(file, "tcp_timestamps: 0", "0"),
      keyPath: "[0].roles[0].params.tcp_timestamps",
      severity: "error",
      fix: "set tcp_timestamps to 1, or tcp_tw_reuse to 0",
    });
    expect(problems[0]!.problem).toMatch(
      /^tcp_tw_reuse 1 needs TCP timestamps, but tcp_timestamps is 0: reuse would silently never happen \(host web0[12]\)$/,
    );
  });

  it("locates errors at the group_vars/host_vars file line where the param was set", () => {
    const gv = fixture("inventory", "resolve-cross", "group_vars", "web.yaml");
    const hv = fixture("inventory", "resolve-cross", "host_vars", "web01.yaml");
    const { problems } = loadConfig(inv("resolve-cross"), pb("plain"), undefined);
    expect(problems).toEqual([
      {
        file: gv,
        ...posIn(gv, "port_range_start: 40000", "40000"),
        keyPath: "ephemeral_ports.port_range_start",
        severity: "error",
        problem: "port_range_start 40000 is not below port_range_end 30001 (host web01)",
        fix: "make port_range_start lower than port_range_end, e.g. 1024 and 65535",
      },
      {
        file: hv,
        ...posIn(hv, "tcp_timestamps: 0", "0"),
        keyPath: "tw_reuse.tcp_timestamps",
        severity: "error",
        problem:
          "tcp_tw_reuse 1 needs TCP timestamps, but tcp_timestamps is 0: reuse would silently never happen (host web01)",
        fix: "set tcp_timestamps to 1, or tcp_tw_reuse to 0",
      },
    ]);
  });

  it("warns (not errors) about a start and end of the same parity, at port_range_end", () => {
    const file = pb("same-parity");
    const { problems } = loadConfig(inv("resolve"), file, undefined);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      file,
      ...posIn(file, "port_range_end: 65534", "65534"),
      severity: "warning",
      fix: "use 65535 as port_range_end",
    });
    expect(hasErrors(problems)).toBe(false);
  });
});

/** resolveTargets on its own: loadConfig hands out no hosts when there are errors. */
function resolveDespiteErrors(
  inventory: string,
  playbook: string,
): { hosts: ResolvedHost[]; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const hosts = resolveTargets(
    loadInventory(inventory, problems)!,
    loadPlaybook(playbook, problems)!,
    undefined,
    problems,
  );
  return { hosts, problems };
}

describe("loadConfig: same role twice for a host", () => {
  const file = pb("twice");
  const { hosts, problems } = resolveDespiteErrors(inv("resolve"), file);

  it("hands out no hosts from loadConfig, since there are errors", () => {
    expect(loadConfig(inv("resolve"), file, undefined).hosts).toEqual([]);
  });

  it("reports each host that gets the role twice, at the second role entry", () => {
    // line 9 is the second play's `- tw-reuse`
    expect(problems).toHaveLength(2);
    expect(problems.map((p) => p.problem)).toEqual([
      'role tw-reuse applies to host web01 twice (plays "first" and "second")',
      'role tw-reuse applies to host web02 twice (plays "first" and "second")',
    ]);
    for (const p of problems)
      expect(p).toMatchObject({
        file,
        line: 9,
        col: 7,
        keyPath: "[1].roles[1]",
        severity: "error",
        fix: "apply each role to a host from one play only",
      });
  });

  it("keeps the first application only", () => {
    expect(hostOf(hosts, "web01").roles.map((r) => r.role.name)).toEqual(["tw-reuse", "ephemeral-ports"]);
    expect(hostOf(hosts, "db01").roles.map((r) => r.role.name)).toEqual(["tw-reuse"]);
  });
});

describe("loadConfig: problems of every file", () => {
  it("reports problems of both files, sorted", () => {
    const { hosts, problems } = loadConfig(inv("unknown-keys"), pb("unknown-role"), undefined);
    expect(hosts).toEqual([]);
    expect(problems.map((p) => p.file)).toEqual(
      [...Array(3).fill(inv("unknown-keys")), ...Array(3).fill(pb("unknown-role"))].sort(),
    );
    const sorted = [...problems].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
    expect(problems).toEqual(sorted);
  });

  it("reports a missing playbook and inventory", () => {
    const { hosts, problems } = loadConfig(inv("no-such-case"), pb("no-such-playbook"), undefined);
    expect(hosts).toEqual([]);
    expect(problems.map((p) => [p.file, p.problem])).toEqual([
      [inv("no-such-case"), "no such inventory file or directory"],
      [pb("no-such-playbook"), "cannot read the file (ENOENT)"],
    ]);
  });

  // BUG: loadInventory returns before reading group_vars/ when hosts.yaml has a schema error, so the
  // group_vars file's error only shows up on the next run.
  it("reports errors in group_vars files even when hosts.yaml has errors too", () => {
    const { problems } = loadConfig(inv("errors-everywhere"), pb("plain"), undefined);
    expect(problems.map((p) => p.file)).toEqual([
      fixture("inventory", "errors-everywhere", "group_vars", "all.yaml"),
      inv("errors-everywhere"),
    ]);
  });

  it("lets resolveTargets be used directly with a loaded inventory and playbook", () => {
    const problems: ConfigProblem[] = [];
    const inventory = loadInventory(inv("resolve"), problems)!;
    const plays = loadPlaybook(pb("plain"), problems)!;
    const hosts = resolveTargets(inventory, plays, "db", problems);
    expect(problems).toEqual([]);
    expect(hosts.map((h) => h.name)).toEqual(["db01"]);
  });
});
