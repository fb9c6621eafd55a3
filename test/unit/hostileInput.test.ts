/**
 * Hostile input: every string a user controls (role params and their keys, connection vars,
 * host/group names, file names, playbook role names and host patterns, --limit) fed with shell
 * metacharacters, newlines, NUL, traversal, huge and look-alike strings. Each is either REJECTED at
 * validation with a located error (file:line:col key.path), or — where the value is legitimate by
 * design — proven never to reach a host's shell unquoted: the scripts that would be sent pass
 * `sh -n`, and running them under /bin/sh in a sandbox (every command that changes something is a
 * stub that records its argv) never runs the injected `touch`.
 */
import { formatKeyPath } from "../../src/config/yamlFile.js";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import fdLimits from "../../roles/fd-limits.js";
import secondarySourceIps from "../../roles/secondary-source-ips.js";
import twReuse from "../../roles/tw-reuse.js";
import { buildApplyScript } from "../../src/remote/apply.js";
import { formatProblem, type ConfigProblem } from "../../src/config/errors.js";
import { buildGatherScript } from "../../src/remote/gather.js";
import {
  FD_FILES_PROBE,
  FD_INIT_PROBE,
  FD_KERNEL_PROBE,
  FD_LOGIN_PROBE,
  FD_SERVICE_PROBE,
  FD_USER_PROBE,
  processName,
  unitName,
} from "../../src/facts/fdLimits.js";
import type { AnyProbe } from "../../src/facts/probe.js";
import { ipAddressesProbe } from "../../src/facts/ipAddresses.js";
import { networkStackProbe } from "../../src/facts/networkStack.js";
import { hasErrors, loadConfig, type LoadedConfig } from "../../src/load.js";
import { factRequestsFor, planHost } from "../../src/plan.js";
import type { ResolvedHost } from "../../src/resolve.js";
import { probeKey, type Change, type Facts, type ProbeResult } from "../../src/role.js";
import { ROLES, roleVarName } from "../../src/roles.js";
import { hostWith } from "./_roles.js";

const SANDBOX = mkdtempSync(join(tmpdir(), "provision-test-hostile-"));
/** The file an injected command would create: its existence is the proof of an injection. */
const PWNED = join(SANDBOX, "pwned");
afterAll(() => rmSync(SANDBOX, { recursive: true, force: true }));
afterEach(() => {
  const injected = existsSync(PWNED);
  rmSync(PWNED, { force: true });
  expect(injected, `an injected command ran: ${PWNED} exists`).toBe(false);
});

const HOSTILE: Array<[label: string, value: string]> = [
  ["semicolon", "eth0; reboot"],
  ["semicolon + touch", `eth0; touch ${PWNED}`],
  ["$() substitution", `$(touch ${PWNED})`],
  ["backticks", "`id`"],
  ["backticks + touch", `\`touch ${PWNED}\``],
  ["newline", "a\nb"],
  ["newline + command", `eth0\ntouch ${PWNED}`],
  ["traversal", "../../etc/passwd"],
  ["absolute path", "/etc/shadow"],
  ["pipe", "x|y"],
  ["&&", `a&&touch ${PWNED}`],
  ["single quote breakout", `'quote; touch ${PWNED}; '`],
  ["double quote breakout", `"dq; touch ${PWNED}; "`],
  ["redirect", `x>${PWNED}`],
  ["$VAR expansion", "${HOME}"],
  ["space + option", "eth0 -rf"],
  ["NUL", "a\0b"],
  ["10k characters", "a".repeat(10_000)],
  ["Cyrillic look-alike", "\u0435th0"],
  ["full-width semicolon", "eth0\uff1btouch"],
  ["leading dash", "-rf"],
  ["glob", "*"],
  ["tilde", "~root"],
];
const HOSTILE_KEYS: Array<[label: string, value: string]> = [
  ["rm -rf", "x; rm -rf /"],
  ["a second sysctl key after a newline", "net.ipv4.tcp_tw_reuse\nnet.ipv4.ip_forward"],
  ["a param name with a command", "tcp_tw_reuse; reboot"],
  ["a param name with trailing newline", "tcp_tw_reuse\n"],
  ...HOSTILE,
];

// ---------------------------------------------------------------------------------------------
// Fixtures: YAML files where @V@ is the hostile value as a YAML string and @K@ a hostile key.

const INVENTORY = "inventory.yaml";
const PLAYBOOK = "playbook.yaml";
const H1 = "all:\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n";
const TW_REUSE_PLAY = "- hosts: all\n  roles: [tw-reuse]\n";

/** A YAML double-quoted scalar: JSON's escapes are YAML's, and NUL is written as YAML's "\0". */
function yamlString(v: string): string {
  return JSON.stringify(v).replace(/\\u0000/g, "\\0");
}

interface Place {
  name: string;
  /** Relative path → YAML text with @V@ (a value) or @K@ (a key, written as an explicit `? key`). */
  files: Record<string, string>;
  /** The file the error must be located in, and its key path. */
  at: string;
  keyPath: (v: string) => string;
  /** The hostile value is the --limit, not a file's content. */
  limit?: boolean;
  /** Hostile values the place accepts by design (each is then proven harmless instead). */
  legit?: (v: string) => boolean;
}

interface Written {
  dir: string;
  loaded: LoadedConfig;
  file: string;
  line: number;
  col: number;
}

function writeAndLoad(place: Place, v: string): Written {
  const dir = mkdtempSync(join(SANDBOX, "cfg-"));
  const files: Record<string, string> = { [INVENTORY]: H1, [PLAYBOOK]: TW_REUSE_PLAY, ...place.files };
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(
      join(dir, rel),
      text.replace("@V@", () => yamlString(v)).replace("@K@", () => yamlString(v)),
    );
  }
  const template = files[place.at] ?? "";
  const lines = template.split("\n");
  const index = lines.findIndex((l) => l.includes("@V@") || l.includes("@K@"));
  const marker = lines[index]?.includes("@V@") ? "@V@" : "@K@";
  const loaded = loadConfig(join(dir, INVENTORY), join(dir, PLAYBOOK), place.limit ? v : undefined);
  const file = place.limit ? "--limit" : join(dir, place.at);
  if (place.limit || index === -1) return { dir, loaded, file, line: 1, col: 1 };
  return { dir, loaded, file, line: index + 1, col: lines[index]!.indexOf(marker) + 1 };
}

function errorsOf(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.filter((p) => p.severity === "error");
}

/** Every role param, placed in the inventory's all.vars under the role's name (a list param gets the value as its first item). */
function roleParamPlaces(): Place[] {
  return ROLES.flatMap((role) =>
    Object.entries(role.schema.properties).map(([param, schema]): Place => {
      const varName = roleVarName(role.name);
      const isList = schema.type === "array";
      const value = isList ? `\n        - @V@` : " @V@";
      return {
        name: `${varName}.${param}${isList ? "[0]" : ""}`,
        files: {
          [INVENTORY]: `all:\n  vars:\n    ${varName}:\n      ${param}:${value}\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n`,
          [PLAYBOOK]: `- hosts: all\n  roles: [${role.name}]\n`,
        },
        at: INVENTORY,
        keyPath: () => `all.vars.${varName}.${param}${isList ? "[0]" : ""}`,
        legit: LEGIT_PARAM_VALUES[`${varName}.${param}`],
      };
    }),
  );
}

/**
 * Hostile-looking values a role param accepts on purpose. Anything a new string param accepts
 * beyond this fails the table: look at where it goes before adding it here.
 */
const LEGIT_PARAM_VALUES: Record<string, (v: string) => boolean> = {
  // Linux allows an interface named -rf; it only ever follows `dev` in `ip addr … dev <name>` (proven below).
  "secondary_source_ips.interface": (v) => v === "-rf",
  // pam_limits' "every user": written into limits.conf, never a probe argument (proven below).
  "fd_limits.users": (v) => v === "*",
};

const noControlCharacters = (v: string) => !/[\u0000-\u001f\u007f]/.test(v) && v.length <= 4096;

const PLACES: Place[] = [
  ...roleParamPlaces(),
  {
    name: "host_vars file: fd_limits.services[0]",
    files: {
      "host_vars/h1.yaml": "fd_limits:\n  services:\n    - @V@\n",
      [PLAYBOOK]: "- hosts: all\n  roles: [fd-limits]\n",
    },
    at: "host_vars/h1.yaml",
    keyPath: () => "fd_limits.services[0]",
  },
  {
    name: "group_vars file: secondary_source_ips.interface",
    files: {
      "group_vars/all.yaml": "secondary_source_ips:\n  interface: @V@\n",
      [PLAYBOOK]: "- hosts: all\n  roles: [secondary-source-ips]\n",
    },
    at: "group_vars/all.yaml",
    keyPath: () => "secondary_source_ips.interface",
    legit: (v) => v === "-rf",
  },
  {
    name: "host vars: secondary_source_ips.addresses[0]",
    files: {
      [INVENTORY]:
        "all:\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n      secondary_source_ips:\n        addresses: [@V@]\n",
      [PLAYBOOK]: "- hosts: all\n  roles: [secondary-source-ips]\n",
    },
    at: INVENTORY,
    keyPath: () => "all.hosts.h1.secondary_source_ips.addresses[0]",
  },
  {
    name: "playbook params: secondary-source-ips interface",
    files: {
      [PLAYBOOK]: "- hosts: all\n  roles:\n    - role: secondary-source-ips\n      params:\n        interface: @V@\n",
    },
    at: PLAYBOOK,
    keyPath: () => "[0].roles[0].params.interface",
    legit: (v) => v === "-rf",
  },
  {
    name: "playbook params: fd-limits users[0]",
    files: {
      [PLAYBOOK]: "- hosts: all\n  roles:\n    - role: fd-limits\n      params:\n        users:\n          - @V@\n",
    },
    at: PLAYBOOK,
    keyPath: () => "[0].roles[0].params.users[0]",
    legit: (v) => v === "*",
  },
  {
    name: "playbook params: ephemeral-ports reserved_ports[0]",
    files: {
      [PLAYBOOK]:
        "- hosts: all\n  roles:\n    - role: ephemeral-ports\n      params:\n        reserved_ports: [8080, @V@]\n",
    },
    at: PLAYBOOK,
    keyPath: () => "[0].roles[0].params.reserved_ports[1]",
  },
  {
    name: "host var: ansible_host",
    files: { [INVENTORY]: "all:\n  hosts:\n    h1:\n      ansible_host: @V@\n" },
    at: INVENTORY,
    keyPath: () => "all.hosts.h1.ansible_host",
    // ssh2 takes it as a host option (no command line), so a leading dash is only an unresolvable name.
    legit: (v) => v === "-rf",
  },
  {
    name: "group_vars file: ansible_user",
    files: { "group_vars/all.yaml": "ansible_user: @V@\n" },
    at: "group_vars/all.yaml",
    keyPath: () => "ansible_user",
  },
  {
    name: "all.vars: ansible_ssh_private_key_file",
    files: {
      [INVENTORY]:
        "all:\n  vars:\n    ansible_ssh_private_key_file: @V@\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n",
    },
    at: INVENTORY,
    keyPath: () => "all.vars.ansible_ssh_private_key_file",
    // A local file this machine reads; any path is a path, but not one with control characters or longer than PATH_MAX.
    legit: noControlCharacters,
  },
  {
    name: "host_vars file: ansible_port",
    files: { "host_vars/h1.yaml": "ansible_port: @V@\n" },
    at: "host_vars/h1.yaml",
    keyPath: () => "ansible_port",
  },
  {
    name: "host var: ansible_become",
    files: { [INVENTORY]: "all:\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n      ansible_become: @V@\n" },
    at: INVENTORY,
    keyPath: () => "all.hosts.h1.ansible_become",
  },
  {
    name: "all.vars: ansible_memtotal_mb",
    files: {
      [INVENTORY]: "all:\n  vars:\n    ansible_memtotal_mb: @V@\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n",
    },
    at: INVENTORY,
    keyPath: () => "all.vars.ansible_memtotal_mb",
  },
  {
    name: "all.vars: listen_ports[0]",
    files: {
      [INVENTORY]: "all:\n  vars:\n    listen_ports:\n      - @V@\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n",
    },
    at: INVENTORY,
    keyPath: () => "all.vars.listen_ports[0]",
  },
  {
    name: "playbook: role name",
    files: { [PLAYBOOK]: "- hosts: all\n  roles:\n    - @V@\n" },
    at: PLAYBOOK,
    keyPath: () => "[0].roles[0]",
  },
  {
    name: "playbook: role: name",
    files: { [PLAYBOOK]: "- hosts: all\n  roles:\n    - role: @V@\n" },
    at: PLAYBOOK,
    keyPath: () => "[0].roles[0].role",
  },
  {
    name: "playbook: play hosts pattern",
    files: { [PLAYBOOK]: "- hosts: @V@\n  roles: [tw-reuse]\n" },
    // `*` is every host and `~root` a regex matching none: host patterns, not names sent anywhere.
    at: PLAYBOOK,
    keyPath: () => "[0].hosts",
    legit: (v) => v === "*" || v === "~root",
  },
  {
    name: "playbook: play name",
    files: { [PLAYBOOK]: "- name: @V@\n  hosts: all\n  roles: [tw-reuse]\n" },
    // Only ever printed in reports.
    at: PLAYBOOK,
    keyPath: () => "[0].name",
    legit: () => true,
  },
  {
    name: "--limit",
    files: {},
    at: INVENTORY,
    keyPath: () => "",
    limit: true,
    legit: (v) => v === "*" || v === "~root",
  },
  // Keys
  {
    name: "key: role param in inventory vars",
    files: {
      [INVENTORY]:
        "all:\n  vars:\n    tw_reuse:\n      ? @K@\n      : 1\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n",
    },
    at: INVENTORY,
    keyPath: (k) => formatKeyPath(["all", "vars", "tw_reuse", k]),
  },
  {
    name: "key: role param in playbook params",
    files: { [PLAYBOOK]: "- hosts: all\n  roles:\n    - role: tw-reuse\n      params:\n        ? @K@\n        : 1\n" },
    at: PLAYBOOK,
    keyPath: (k) => formatKeyPath([0, "roles", 0, "params", k]),
  },
  {
    name: "key: host var",
    files: { [INVENTORY]: "all:\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n      ? @K@\n      : 1\n" },
    // A var provision doesn't read is the user's business (Ansible's may be any name): ignored, never sent.
    at: INVENTORY,
    keyPath: (k) => formatKeyPath(["all", "hosts", "h1", k]),
    legit: () => true,
  },
  {
    name: "key: group_vars file",
    files: { "group_vars/all.yaml": "? @K@\n: {tcp_tw_reuse: 1}\n" },
    at: "group_vars/all.yaml",
    keyPath: (k) => formatKeyPath([k]),
    legit: () => true,
  },
  {
    name: "key: group body",
    files: { [INVENTORY]: "all:\n  hosts:\n    h1:\n      ansible_host: 198.18.0.2\n  ? @K@\n  : {}\n" },
    // Ansible skips an unknown key in a group with a warning; so does provision: never sent.
    at: INVENTORY,
    keyPath: (k) => formatKeyPath(["all", k]),
    legit: () => true,
  },
  {
    name: "key: play",
    files: { [PLAYBOOK]: "- hosts: all\n  roles: [tw-reuse]\n  ? @K@\n  : 1\n" },
    at: PLAYBOOK,
    keyPath: (k) => formatKeyPath([0, k]),
  },
  // Names: labels the inventory may choose freely; proven never to reach a host's shell.
  {
    name: "name: host (ansible_host set)",
    files: { [INVENTORY]: "all:\n  hosts:\n    ? @K@\n    : {ansible_host: 198.18.0.2}\n" },
    at: INVENTORY,
    keyPath: (k) => formatKeyPath(["all", "hosts", k]),
    legit: () => true,
  },
  {
    name: "name: host (the name is the address)",
    files: { [INVENTORY]: "all:\n  hosts:\n    ? @K@\n" },
    // Without ansible_host the name is what ssh2 connects to and what known_hosts records: validated like ansible_host.
    at: INVENTORY,
    keyPath: (k) => formatKeyPath(["all", "hosts", k]),
    legit: (v) => v === "-rf",
  },
  {
    name: "name: group",
    files: { [INVENTORY]: "all:\n  children:\n    ? @K@\n    : {hosts: {h1: {ansible_host: 198.18.0.2}}}\n" },
    at: INVENTORY,
    keyPath: (k) => formatKeyPath(["all", "children", k]),
    legit: () => true,
  },
];

const KEY_PLACES = PLACES.filter((p) => Object.values(p.files).some((t) => t.includes("@K@")));
const VALUE_PLACES = PLACES.filter((p) => !KEY_PLACES.includes(p));

function rows(places: Place[], values: Array<[string, string]>) {
  return places.flatMap((place) => values.map(([label, v]) => ({ place, label, v, legit: place.legit?.(v) ?? false })));
}

// ---------------------------------------------------------------------------------------------
// The sandbox: /bin/sh with a PATH of stubs. Commands that change a host only record their argv
// (fields split by \x1f, records by \x1e); commands that only read or compute are the real ones,
// and so is `touch`, so an injected `touch` would really create PWNED.

const STUBS = [
  "ip",
  "rm",
  "mkdir",
  "chmod",
  "chown",
  "sync",
  "mv",
  "sysctl",
  "systemctl",
  "modprobe",
  "su",
  "id",
  "pgrep",
  "getent",
  "sha256sum",
  "mktemp",
  "sh",
  "bash",
  "reboot",
];
const REAL = ["touch", "base64", "tr", "cut", "cat", "sed", "awk", "head"];
const BIN = join(SANDBOX, "bin");
mkdirSync(BIN);
for (const name of STUBS) {
  const stub = join(BIN, name);
  writeFileSync(
    stub,
    [
      "#!/bin/sh",
      `{ printf '%s' "\${0##*/}"; for a in "$@"; do printf '\\037%s' "$a"; done; printf '\\036'; } >> "$STUB_LOG"`,
      `[ "\${0##*/}" = mktemp ] && printf '%s\\n' "$STUB_TMP"`,
      "exit 0",
      "",
    ].join("\n"),
  );
  chmodSync(stub, 0o755);
}
for (const name of REAL)
  symlinkSync(execFileSync("/bin/sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim(), join(BIN, name));

interface SandboxRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Every stubbed command run, as its argv. */
  calls: string[][];
  /** What a file step wrote into its temp file (mktemp's answer). */
  tmpContent: string | null;
}

function shSyntaxOk(script: string): boolean {
  return spawnSync("/bin/sh", ["-n"], { input: script }).status === 0;
}

/** Runs a script as the transport does (`sh -s`, script on stdin), with only stubs and harmless real commands on PATH. */
function runInSandbox(script: string, env: Record<string, string> = {}): SandboxRun {
  const run = mkdtempSync(join(SANDBOX, "run-"));
  const log = join(run, "calls");
  const tmp = join(run, "tmpfile");
  writeFileSync(log, "");
  const r = spawnSync("/bin/sh", ["-s"], {
    input: `export LC_ALL=C\n${script}`,
    cwd: run,
    timeout: 20_000,
    encoding: "utf8",
    env: { PATH: BIN, STUB_LOG: log, STUB_TMP: tmp, ...env },
  });
  const calls = readFileSync(log, "utf8")
    .split("\x1e")
    .filter(Boolean)
    .map((c) => c.split("\x1f"));
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    calls,
    tmpContent: existsSync(tmp) ? readFileSync(tmp, "utf8") : null,
  };
}

const NONCE = "0123456789abcdef";

/** The value is in no role param and no fact request, and the gather script built for the host is valid sh. */
function expectNeverInScripts(host: ResolvedHost, v: string): void {
  const requests = factRequestsFor(host);
  const gather = buildGatherScript(requests, NONCE);
  expect(shSyntaxOk(gather)).toBe(true);
  expect(JSON.stringify(requests)).not.toContain(JSON.stringify(v).slice(1, -1));
  // A one-character value (`*`) is in any script; longer ones must not be.
  if (v.length > 1) expect(gather).not.toContain(v);
}

// ---------------------------------------------------------------------------------------------

describe("the sandbox can see an injection (so the zeros below mean something)", () => {
  it("an unquoted value does run the injected touch, and stubs record argv exactly", () => {
    const r = runInSandbox(`ip addr add 198.18.5.10/24 dev eth0; touch ${PWNED}\nip link show 'a b'\n`);
    expect(existsSync(PWNED)).toBe(true);
    rmSync(PWNED);
    expect(r.calls).toEqual([
      ["ip", "addr", "add", "198.18.5.10/24", "dev", "eth0"],
      ["ip", "link", "show", "a b"],
    ]);
  });
});

describe("hostile values: rejected at validation with a located error, or legitimate and never sent", () => {
  it.each(
    rows(VALUE_PLACES, HOSTILE).map((r) => ({
      ...r,
      title: `${r.place.name} ← ${r.label}: ${r.legit ? "legit, never sent" : "rejected"}`,
    })),
  )("$title", ({ place, v, legit }) => {
    const w = writeAndLoad(place, v);
    if (!legit) {
      expectLocatedError(w, place.keyPath(v));
      return;
    }
    expect(errorsOf(w.loaded.problems).map(formatProblem)).toEqual([]);
    for (const host of w.loaded.hosts) expectNeverInScripts(host, v);
  });

  it.each(
    rows(KEY_PLACES, HOSTILE_KEYS).map((r) => ({
      ...r,
      title: `${r.place.name} ← ${r.label}: ${r.legit ? "legit, never sent" : "rejected"}`,
    })),
  )("$title", ({ place, v, legit }) => {
    const w = writeAndLoad(place, v);
    if (!legit) {
      expectLocatedError(w, place.keyPath(v));
      return;
    }
    expect(errorsOf(w.loaded.problems).map(formatProblem)).toEqual([]);
    expect(w.loaded.hosts.length).toBe(1);
    const host = w.loaded.hosts[0]!;
    if (place.name.startsWith("name: host")) expect(host.name).toBe(v);
    if (place.name === "name: host (the name is the address)") expect(host.connection.host).toBe(v);
    expectNeverInScripts(host, v);
    expect(JSON.stringify(host.roles.map((r) => r.params))).not.toContain(JSON.stringify(v).slice(1, -1));
  });
});

function expectLocatedError(w: Written, keyPath: string): void {
  const errors = errorsOf(w.loaded.problems);
  expect(hasErrors(w.loaded.problems)).toBe(true);
  const located = errors.find(
    (p) => p.file === w.file && p.line === w.line && p.col === w.col && p.keyPath === keyPath,
  );
  expect(
    located,
    `no error at ${w.file}:${w.line}:${w.col} ${JSON.stringify(keyPath)}; got:\n${errors.map(formatProblem).join("\n")}`,
  ).toBeDefined();
  expect(
    formatProblem(located!).startsWith(`${w.file}:${w.line}:${w.col}${keyPath === "" ? "" : ` ${keyPath}`}: `),
  ).toBe(true);
  // Nothing else is wrong with the fixture: every error is about the hostile value.
  for (const e of errors) expect(e.file).toBe(w.file);
}

// ---------------------------------------------------------------------------------------------

/** Names a file can have: no `/`, no NUL, not hidden, within NAME_MAX. */
const FILE_NAMEABLE = HOSTILE.filter(
  ([, v]) => !v.includes("/") && !v.includes("\0") && !v.startsWith(".") && Buffer.byteLength(v) <= 250,
);

describe("group_vars/host_vars file names: no path is ever built from a name, a stray file is reported and ignored", () => {
  it.each(
    FILE_NAMEABLE.flatMap(([label, v]) => (["group_vars", "host_vars"] as const).map((dir) => ({ label, v, dir }))),
  )("$dir/<$label>.yaml", ({ v, dir }) => {
    const place: Place = {
      name: dir,
      files: { [`${dir}/${v}.yaml`]: "tw_reuse:\n  tcp_tw_reuse: 0\n" },
      at: INVENTORY,
      keyPath: () => "",
    };
    const w = writeAndLoad(place, v);
    const file = join(w.dir, dir, `${v}.yaml`);
    expect(errorsOf(w.loaded.problems)).toEqual([]);
    expect(w.loaded.problems).toContainEqual(expect.objectContaining({ file, line: 1, col: 1, severity: "warning" }));
    expect(w.loaded.hosts[0]!.roles[0]!.params.tcp_tw_reuse).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Defense in depth: every sink that builds shell from a value quotes it, so even a value that
// skipped validation arrives as one word. (NUL is left out: no shell word can hold one, and every
// place above rejects it.)

const QUOTABLE = HOSTILE.filter(([, v]) => !v.includes("\0"));

function applyOne(change: Change): SandboxRun {
  const script = buildApplyScript([{ ...change, role: "test" }], NONCE);
  expect(shSyntaxOk(script)).toBe(true);
  return runInSandbox(script);
}

function gatherProbe(probe: AnyProbe, arg: string): SandboxRun {
  const script = buildGatherScript([{ kind: "probe", probe, arg }], NONCE);
  expect(shSyntaxOk(script)).toBe(true);
  return runInSandbox(script);
}

describe("every shell sink quotes: the value reaches the command as one intact argument", () => {
  it.each(QUOTABLE)("command argv ← %s", (_, v) => {
    const r = applyOne({ kind: "command", argv: ["ip", "addr", "add", "198.18.5.10/24", "dev", v], description: "x" });
    expect(r.calls).toEqual([["ip", "addr", "add", "198.18.5.10/24", "dev", v]]);
  });

  it.each(QUOTABLE)("sysctl value ← %s", (_, v) => {
    const r = applyOne({ kind: "sysctl", key: "net.ipv4.tcp_fin_timeout", before: null, after: v, description: "x" });
    expect(r.calls).toEqual([["sysctl", "-q", "-w", `net.ipv4.tcp_fin_timeout=${v}`]]);
  });

  it.each(QUOTABLE)("file path and content ← %s", (_, v) => {
    const path = join(SANDBOX, "no-such-dir", `60-${v}.conf`);
    const r = applyOne({
      kind: "file",
      path,
      before: null,
      after: v,
      mode: "0644",
      owner: "root",
      group: "root",
      description: "x",
    });
    expect(r.tmpContent).toBe(v);
    expect(r.calls.find((c) => c[0] === "mv")).toEqual(["mv", "-f", expect.stringMatching(/tmpfile$/), path]);
    expect(r.calls.find((c) => c[0] === "mkdir")).toEqual(["mkdir", "-p", dirname(path)]);
  });

  it.each(QUOTABLE)("fd-limits-user probe argument ← %s", (_, v) => {
    const r = gatherProbe(FD_USER_PROBE, v);
    expect(r.calls[0]).toEqual(["id", "-u", v]);
  });

  it.each(QUOTABLE)("fd-limits-service probe argument ← %s", (_, v) => {
    const r = gatherProbe(FD_SERVICE_PROBE, v);
    // No systemd on this machine: the probe looks the process up by name.
    const comm = processName(v);
    const pgrep = r.calls.find((c) => c[0] === "pgrep");
    if (comm === null) expect(pgrep).toBeUndefined();
    else expect(pgrep).toEqual(["pgrep", "-x", comm.replace(/\./g, "\\.")]);
    expect(unitName(v).endsWith(".service")).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The two hostile-looking role values accepted on purpose, followed all the way to the host.

const SSH = "198.18.1.2";

function parsedProbe(probe: AnyProbe, raw: string, arg?: string): ProbeResult {
  return { ok: true, value: probe.parse(raw, arg) };
}

function stackLine(kind: string, path: string, content: string): string {
  return `${kind} ${Buffer.from(path).toString("base64")} ${Buffer.from(content).toString("base64")}`;
}

describe("interface -rf (a legal Linux name) reaches `ip` only as the word after `dev`", () => {
  const iface = "-rf";
  const ipJson = JSON.stringify([
    { ifname: "lo", addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }] },
    { ifname: iface, addr_info: [{ family: "inet", local: SSH, prefixlen: 24 }] },
  ]);
  const facts: Facts = {
    sysctl: { "net.ipv4.ip_local_port_range": "32768\t60999" },
    files: {},
    listeningPorts: null,
    probes: {
      [probeKey(ipAddressesProbe.name)]: parsedProbe(
        ipAddressesProbe,
        `${ipJson}\n\n# promote_secondaries\nall 0\n${iface} 1\n`,
      ),
      [probeKey(networkStackProbe.name)]: parsedProbe(
        networkStackProbe,
        stackLine(
          "ifupdown-main",
          "/etc/network/interfaces",
          `auto ${iface}\niface ${iface} inet static\n  address ${SSH}/24\n`,
        ),
      ),
    },
  };
  const host = hostWith("web01", [
    [secondarySourceIps, { interface: iface, addresses: ["198.18.1.10/24"], stack: "ifupdown" }],
  ]);
  const plan = planHost(host, facts, "plan", SSH);

  it("the apply script runs `ip addr add … dev -rf` with -rf as one argument and writes only the role's files", () => {
    const script = buildApplyScript(plan.changes, NONCE);
    expect(shSyntaxOk(script)).toBe(true);
    const r = runInSandbox(script);
    expect(r.calls.filter((c) => c[0] === "ip")).toEqual([["ip", "addr", "add", "198.18.1.10/24", "dev", iface]]);
    expect(r.calls.filter((c) => c[0] === "mv").map((c) => c[3])).toEqual([
      "/etc/provision/secondary-source-ips.state",
      "/etc/network/if-up.d/60-provision-secondary-ips",
    ]);
  });

  it("the ifupdown hook it writes is valid sh, and at ifup adds the address to -rf only", () => {
    const hook = plan.changes.find((c) => c.kind === "file" && c.path.startsWith("/etc/network/if-up.d/"));
    if (hook?.kind !== "file") throw new Error("no hook planned");
    expect(shSyntaxOk(hook.after)).toBe(true);
    const up = runInSandbox(hook.after, { IFACE: iface, MODE: "start", ADDRFAM: "inet" });
    expect(up.status).toBe(0);
    expect(up.calls).toEqual([["ip", "addr", "replace", "198.18.1.10/24", "dev", iface]]);
    expect(runInSandbox(hook.after, { IFACE: "eth0", MODE: "start", ADDRFAM: "inet" }).calls).toEqual([]);
  });
});

describe("users * (pam_limits' every user) is a limits.conf domain, never a probe argument", () => {
  const captured = (name: string) =>
    readFileSync(join(import.meta.dirname, "..", "fixtures", "fd-limits", `${name}.txt`), "utf8");
  const params = { users: ["*"], soft_nofile: 16384, hard_nofile: 20000, services: [] };
  const host = hostWith("web01", [[fdLimits, params]]);

  it("no request carries it, and the apply script only writes the role's files", () => {
    expect(factRequestsFor(host).filter((r) => r.kind === "probe" && r.arg !== undefined)).toEqual([]);
    const facts: Facts = {
      sysctl: {},
      files: {},
      listeningPorts: null,
      probes: {
        [probeKey(FD_KERNEL_PROBE.name)]: parsedProbe(FD_KERNEL_PROBE, captured("kernel")),
        [probeKey(FD_LOGIN_PROBE.name)]: parsedProbe(FD_LOGIN_PROBE, captured("login-root")),
        [probeKey(FD_INIT_PROBE.name)]: parsedProbe(FD_INIT_PROBE, captured("init")),
        [probeKey(FD_FILES_PROBE.name)]: parsedProbe(FD_FILES_PROBE, "done=yes\n"),
      },
    };
    const plan = planHost(host, facts);
    const limits = plan.changes.find(
      (c) => c.kind === "file" && c.path === "/etc/security/limits.d/60-provision-fd-limits.conf",
    );
    if (limits?.kind !== "file") throw new Error("no limits file planned");
    expect(limits.after.split("\n").filter((l) => !l.startsWith("#") && l.trim() !== "")).toEqual([
      expect.stringMatching(/^\*\s+soft\s+nofile\s+16384$/),
      expect.stringMatching(/^\*\s+hard\s+nofile\s+20000$/),
    ]);
    const script = buildApplyScript(plan.changes, NONCE);
    expect(shSyntaxOk(script)).toBe(true);
    const r = runInSandbox(script);
    expect(
      r.calls
        .filter((c) => c[0] === "mv")
        .map((c) => c[3])
        .sort(),
    ).toEqual(plan.changes.flatMap((c) => (c.kind === "file" ? [c.path] : [])).sort());
  });
});

describe("a hostile SSH address never becomes part of a change", () => {
  it.each(QUOTABLE)("secondary-source-ips refuses to plan with the session address %s", (_, v) => {
    const host = hostWith("web01", [
      [secondarySourceIps, { addresses: ["198.18.1.10/24"], persist: false }],
      [twReuse, {}],
    ]);
    const ipJson = JSON.stringify([{ ifname: "eth0", addr_info: [{ family: "inet", local: SSH, prefixlen: 24 }] }]);
    const facts: Facts = {
      sysctl: {},
      files: {},
      listeningPorts: null,
      probes: {
        [probeKey(ipAddressesProbe.name)]: parsedProbe(ipAddressesProbe, ipJson),
        [probeKey(networkStackProbe.name)]: parsedProbe(networkStackProbe, ""),
      },
    };
    expect(planHost(host, facts, "plan", SSH).changes.length).toBeGreaterThan(0);
    const refused = planHost(host, facts, "plan", v);
    expect(refused.refusals.every((r) => r.role === "secondary-source-ips")).toBe(true);
    expect(refused.refusals.map((r) => r.text).join("\n")).toMatch(/cannot tell which address the SSH session uses/);
  });
});
