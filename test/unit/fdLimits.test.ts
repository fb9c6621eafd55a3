import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import fdLimits, {
  LIMITS_PATH,
  serviceDropinPath,
  SYSCTL_PATH,
  SYSTEMD_DEFAULT_PATH,
  type FdLimitsParams,
} from "../../roles/fd-limits.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import {
  FD_FILES_PROBE,
  FD_INIT_PROBE,
  FD_KERNEL_PROBE,
  FD_LOGIN_PROBE,
  FD_SERVICE_PROBE,
  FD_USER_PROBE,
  isOwnFile,
  type KernelFiles,
  type OwnFiles,
} from "../../src/facts/fdLimits.js";
import type { Probe } from "../../src/facts/probe.js";
import { sysctlBootProbe } from "../../src/facts/sysctlBoot.js";
import { planHost, probesOf, type HostPlan, type PlannedCheck } from "../../src/plan.js";
import { probeKey, type Facts, type ProbeResult } from "../../src/role.js";
import { evaluateChecks } from "../../src/verify.js";
import { hostWith, paramsOf, withBootTruth } from "./_roles.js";
import { withoutBootChecks } from "./_roles.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "fd-limits");
const captured = (name: string) => readFileSync(join(FIXTURES, `${name}.txt`), "utf8");

/** What the role would be run with on this machine: values a login can reach here (hard cap 20000). */
const HERE = { soft_nofile: 16384, hard_nofile: 20000 };

interface HostShape {
  kernel?: string;
  login?: string;
  init?: string;
  services?: Record<string, string>;
  users?: Record<string, string>;
  files?: Record<string, string>;
  /** More of the role's own files on the host than `files` holds (e.g. drop-ins of services no longer listed). */
  present?: string[];
}

function parsed<T>(probe: Probe<T>, raw: string, arg?: string): ProbeResult<T> {
  return { ok: true, value: probe.parse(raw, arg) };
}

/** The typed answer of a probe in these facts (the test built it, so it is there). */
function answer<T>(f: Facts, probe: Probe<T>, arg?: string): T {
  return (f.probes![probeKey(probe.name, arg)] as { ok: true; value: T }).value;
}

/** The files probe's output for these paths, in the format its command prints. */
const filesListing = (paths: Iterable<string>) => [...[...paths].map((p) => `file=${p}`), "done=yes", ""].join("\n");

/** Facts built by the real parsers from probe output (captured on this machine unless said otherwise). */
function hostFacts(shape: HostShape = {}): Facts {
  const probes: Record<string, ProbeResult> = {
    [FD_KERNEL_PROBE.name]: parsed(FD_KERNEL_PROBE, shape.kernel ?? captured("kernel")),
    [FD_LOGIN_PROBE.name]: parsed(FD_LOGIN_PROBE, shape.login ?? captured("login-root")),
    [FD_INIT_PROBE.name]: parsed(FD_INIT_PROBE, shape.init ?? captured("init")),
    [FD_FILES_PROBE.name]: parsed(
      FD_FILES_PROBE,
      filesListing([...Object.keys(shape.files ?? {}).filter(isOwnFile), ...(shape.present ?? [])]),
    ),
  };
  for (const [name, raw] of Object.entries(shape.services ?? {}))
    probes[probeKey(FD_SERVICE_PROBE.name, name)] = parsed(FD_SERVICE_PROBE, raw, name);
  for (const [name, raw] of Object.entries(shape.users ?? {}))
    probes[probeKey(FD_USER_PROBE.name, name)] = parsed(FD_USER_PROBE, raw, name);
  return { sysctl: {}, files: { ...shape.files }, listeningPorts: null, probes };
}

function plan(over: Record<string, unknown>, f: Facts, purpose: "plan" | "verify" = "plan"): HostPlan {
  return planHost(hostWith("web01", [[fdLimits, over]]), f, purpose);
}

const SYSTEMD_INIT =
  "pid1=systemd\nsystemd=yes\npid1_hard=524288\npid1_cap_eff=000001ffffffffff\ndefault_hard=524288\ndefault_soft=1024\n";
const systemdService = (over: string) =>
  `via=systemd\nload_state=loaded\nneed_reload=no\nunit_hard=524288\nunit_soft=1024\n${over}`;
const loginWith = (lines: Record<string, string>) =>
  Object.entries({
    euid: "0",
    session: "100",
    uid: "0",
    user: "root",
    groups: "root",
    soft: "1024",
    hard: "4096",
    sshd: "10",
    sshd_hard: "1048576",
    sshd_cap_eff: "000001ffffffffff",
    ...lines,
  })
    .map(([k, v]) => `${k}=${v}\n`)
    .join("");
const kernelWith = (nrOpen: string, fileMax: string, writable = "yes") =>
  `nr_open=${nrOpen}\nfile_max=${fileMax}\nfs_writable=${writable}\n`;

function fileChange(p: HostPlan, path: string): string {
  const c = p.changes.find((x) => x.kind === "file" && x.path === path);
  if (!c || c.kind !== "file") throw new Error(`no change of ${path}`);
  return c.after;
}

const targetOf = (c: HostPlan["changes"][number]) =>
  c.kind === "file" ? c.path : c.kind === "sysctl" ? `${c.key}=${c.after}` : c.argv.join(" ");
const checkName = (c: PlannedCheck) =>
  c.kind === "probe"
    ? `${c.label} ${c.compare} ${c.expected}${c.freshLogin ? " (fresh)" : ""}`
    : c.kind === "file"
      ? c.path
      : c.key;

/** The host after run: files written, raised values live, and what PAM/systemd would now give. */
function afterRun(
  p: HostPlan,
  before: Facts,
  fresh: { login?: string; users?: Record<string, string>; services?: Record<string, string> } = {},
): Facts {
  const after = structuredClone(before);
  const kernel: KernelFiles = answer(after, FD_KERNEL_PROBE);
  const own = new Set(answer<OwnFiles>(after, FD_FILES_PROBE).files);
  for (const c of p.changes) {
    if (c.kind === "file") after.files[c.path] = c.after;
    if (c.kind === "file") own.add(c.path);
    if (c.kind === "sysctl" && c.key === "fs.nr_open") kernel.nr_open = Number(c.after);
    if (c.kind === "sysctl" && c.key === "fs.file-max") kernel.file_max = c.after;
    if (c.kind === "command" && c.argv[0] === "rm") {
      after.files[c.argv[3]!] = null;
      own.delete(c.argv[3]!);
    }
  }
  after.probes![FD_FILES_PROBE.name] = parsed(FD_FILES_PROBE, filesListing(own));
  if (fresh.login) after.probes![FD_LOGIN_PROBE.name] = parsed(FD_LOGIN_PROBE, fresh.login);
  for (const [name, raw] of Object.entries(fresh.users ?? {}))
    after.probes![probeKey(FD_USER_PROBE.name, name)] = parsed(FD_USER_PROBE, raw, name);
  for (const [name, raw] of Object.entries(fresh.services ?? {}))
    after.probes![probeKey(FD_SERVICE_PROBE.name, name)] = parsed(FD_SERVICE_PROBE, raw, name);
  return withBootTruth(after);
}

/** Every non-comment line of a rendered file follows a comment line (section headers excepted). */
function valuesWithoutComment(content: string): string[] {
  const lines = content.split("\n");
  return lines.filter(
    (line, i) =>
      line !== "" && !line.startsWith("#") && !/^\[[A-Za-z]+\]$/.test(line) && !(lines[i - 1] ?? "").startsWith("#"),
  );
}

describe("fd-limits on a host like this machine (root login, sshd capped at 20000, no systemd)", () => {
  const before = hostFacts({
    users: { deployw: captured("user-as-root") },
    services: { gateway: captured("service-stopped") },
  });
  const p = plan({ ...HERE, users: ["*", "root", "deployw"], services: ["gateway"] }, before);

  it("writes the sysctl file first, then the limits file, then the systemd drop-ins; no daemon-reload without systemd", () => {
    expect(p.changes.map(targetOf)).toEqual([
      SYSCTL_PATH,
      LIMITS_PATH,
      SYSTEMD_DEFAULT_PATH,
      serviceDropinPath("gateway"),
    ]);
    expect(
      p.changes.every((c) => c.kind === "file" && c.mode === "0644" && c.owner === "root" && c.before === null),
    ).toBe(true);
  });

  it("never lowers the host: fs.file-max records the host's 2466193, above the 2097152 asked", () => {
    expect(fileChange(p, SYSCTL_PATH)).toContain("fs.nr_open = 1048576\n");
    expect(fileChange(p, SYSCTL_PATH)).toContain("fs.file-max = 2466193\n");
  });

  it("checks the kernel at least, the files, and what a fresh login and su -l get", () => {
    expect(withoutBootChecks(p.checks).map(checkName)).toEqual([
      "fs.nr_open at-least 1048576",
      "fs.file-max at-least 2466193",
      SYSCTL_PATH,
      LIMITS_PATH,
      "fresh login (root): soft nofile equal 16384 (fresh)",
      "fresh login (root): hard nofile equal 20000 (fresh)",
      "su -l deployw: soft nofile equal 16384 (fresh)",
      "su -l deployw: hard nofile equal 20000 (fresh)",
      SYSTEMD_DEFAULT_PATH,
      serviceDropinPath("gateway"),
    ]);
  });

  it("says where the drop-ins wait, and which limits apply from when", () => {
    expect(p.notes.map((n) => n.text)).toEqual([
      `${LIMITS_PATH} applies to PAM sessions opened from now on (ssh, login, su, sudo); sessions already open keep their limits`,
      "systemd is not running here (PID 1 is process_api): the systemd drop-ins wait for the next boot with systemd; no daemon-reload",
      "gateway is not running: no /proc/<pid>/limits check; its limit applies when it starts",
    ]);
  });

  it("renders the limits file: a line per user and limit, tab-separated, each after a comment", () => {
    const content = fileChange(p, LIMITS_PATH);
    expect(content.split("\n")[0]).toMatch(/^# Managed by provision, role fd-limits\./);
    expect(content).toContain("PAM sessions only");
    expect(content.split("\n").filter((l) => l !== "" && !l.startsWith("#"))).toEqual([
      "*\tsoft\tnofile\t16384",
      "*\thard\tnofile\t20000",
      "root\tsoft\tnofile\t16384",
      "root\thard\tnofile\t20000",
      "deployw\tsoft\tnofile\t16384",
      "deployw\thard\tnofile\t20000",
    ]);
    expect(content.replace(/\n# /g, " ")).toContain("select() can break: FD_SETSIZE is 1024");
  });

  it.each([SYSCTL_PATH, LIMITS_PATH, SYSTEMD_DEFAULT_PATH, serviceDropinPath("gateway")])(
    "%s: a header naming the role and how to undo it, a comment before every value",
    (path) => {
      const content = fileChange(p, path);
      expect(content.startsWith("# Managed by provision, role fd-limits.")).toBe(true);
      expect(content).toMatch(/^# Undo: /m);
      expect(valuesWithoutComment(content)).toEqual([]);
      expect(content.endsWith("\n")).toBe(true);
      expect(content.endsWith("\n\n")).toBe(false);
    },
  );

  it("renders the systemd drop-ins with soft:hard", () => {
    expect(fileChange(p, SYSTEMD_DEFAULT_PATH)).toMatch(/^\[Manager\]$[\s\S]*^DefaultLimitNOFILE=1024:20000$/m);
    expect(fileChange(p, serviceDropinPath("gateway"))).toMatch(/^\[Service\]$[\s\S]*^LimitNOFILE=16384:20000$/m);
  });

  it("passes verify once applied, when logins really get the file's limits", () => {
    const gets = "exists=yes\nchecked=yes\nsoft=16384\nhard=20000\n";
    const after = afterRun(p, before, {
      login: loginWith({ soft: "16384", hard: "20000", sshd_hard: "20000", sshd_cap_eff: "000001fffeffffff" }),
      users: { deployw: gets },
    });
    expect(evaluateChecks(p.checks, after).filter((r) => !r.ok)).toEqual([]);
  });
});

describe("fd-limits idempotence", () => {
  it.each<[string, Record<string, unknown>, HostShape]>([
    ["this machine", HERE, {}],
    [
      "defaults on an uncapped host with low kernel values",
      {},
      { kernel: kernelWith("65536", "100000"), login: loginWith({}) },
    ],
    [
      "defaults on a host whose values are already higher",
      {},
      { kernel: kernelWith("4194304", "9223372036854775807"), login: loginWith({}) },
    ],
    ["kernel values left alone", { ...HERE, nr_open: null, file_max: null }, {}],
    [
      "named users and a running service",
      { ...HERE, users: ["root", "deployw", "@ops"], services: ["gateway"] },
      { users: { deployw: captured("user-as-root") }, services: { gateway: captured("service-running") } },
    ],
    [
      "systemd with a service",
      { services: ["nginx"] },
      {
        init: SYSTEMD_INIT,
        login: loginWith({}),
        services: { nginx: systemdService("running=yes\npid=812\nsoft=1024\nhard=524288\n") },
      },
    ],
    ["nothing for logins or systemd", { ...HERE, users: [], systemd_default_limit: false }, {}],
  ])("a host already matching the plan (%s) gets zero changes", (_what, over, shape) => {
    const before = hostFacts(shape);
    const first = plan(over, before);
    expect(first.changes.length).toBeGreaterThan(0);
    const after = afterRun(first, before);
    const second = plan(over, after);
    expect(second.changes).toEqual([]);
    // no host-specific volatile value in any file: the second plan renders the same bytes
    expect(second.checks.filter((c) => c.kind === "file")).toEqual(first.checks.filter((c) => c.kind === "file"));
    // verify agrees with what was written (what PAM and systemd then give is tested on its own below)
    const written = second.checks.filter(
      (c) => c.kind === "file" || (c.kind === "probe" && c.probe === "fd-limits-kernel"),
    );
    expect(written.length).toBeGreaterThan(0);
    expect(evaluateChecks(written, after).filter((r) => !r.ok)).toEqual([]);
  });
});

describe("fs.nr_open and fs.file-max: raise only", () => {
  it.each<[string, Record<string, unknown>, string, string | null, "plan" | "verify", string[], string]>([
    // what, params, live kernel, own file's recorded values, purpose, planned live changes, value the file records
    [
      "live below: raised",
      { nr_open: 2097152 },
      kernelWith("1048576", "2466193"),
      null,
      "plan",
      ["fs.nr_open=2097152"],
      "fs.nr_open = 2097152",
    ],
    [
      "live above: kept and recorded",
      { nr_open: 1048576 },
      kernelWith("4194304", "2466193"),
      null,
      "plan",
      [],
      "fs.nr_open = 4194304",
    ],
    [
      "lowered since the run: restored to what the file recorded",
      { nr_open: 1048576 },
      kernelWith("1048576", "2466193"),
      "fs.nr_open = 4194304\n",
      "plan",
      ["fs.nr_open=4194304"],
      "fs.nr_open = 4194304",
    ],
    [
      "raised by someone else since: verify expects the recorded value",
      { nr_open: 1048576 },
      kernelWith("8388608", "2466193"),
      "fs.nr_open = 4194304\n",
      "verify",
      [],
      "fs.nr_open = 4194304",
    ],
    [
      "file-max near LONG_MAX keeps every digit",
      { file_max: 2097152 },
      kernelWith("1048576", "9223372036854775807"),
      null,
      "plan",
      [],
      "fs.file-max = 9223372036854775807",
    ],
  ])("%s", (_what, over, kernel, recorded, purpose, liveChanges, fileLine) => {
    const f = hostFacts({ kernel, login: loginWith({}), ...(recorded ? { files: { [SYSCTL_PATH]: recorded } } : {}) });
    const p = plan(over, f, purpose);
    expect(p.changes.filter((c) => c.kind === "sysctl").map(targetOf)).toEqual(liveChanges);
    const rendered = p.checks.find((c) => c.kind === "file" && c.path === SYSCTL_PATH);
    expect(rendered?.kind === "file" && rendered.expected).toContain(`${fileLine}\n`);
  });

  it("verify notes a live value raised beyond what the file recorded, and passes", () => {
    const f = hostFacts({
      kernel: kernelWith("8388608", "2466193"),
      login: loginWith({}),
      files: { [SYSCTL_PATH]: "x" },
    });
    const p = plan({ nr_open: 1048576 }, f, "verify");
    expect(p.notes.map((n) => n.text)).toContain(
      `fs.nr_open is 8,388,608 live, above the 1,048,576 in ${SYSCTL_PATH}: the next run records it (raise only)`,
    );
    expect(
      evaluateChecks(
        p.checks.filter((c) => c.kind === "probe" && c.probe === "fd-limits-kernel"),
        f,
      ).every((r) => r.ok),
    ).toBe(true);
  });

  it("in a container (/proc/sys/fs read-only) a raise is refused with its fix; values already high enough are fine", () => {
    const container = (fileMax: string) =>
      hostFacts({ kernel: kernelWith("1048576", fileMax, "no"), login: loginWith({}) });
    expect(plan({ ...HERE }, container("100000")).refusals.map((r) => r.text)).toEqual([
      "fs.file-max is 100,000 here, below the 2,097,152 wanted, and /proc/sys/fs is read-only (a container: fs.* belongs to the whole machine): raise it on the machine that runs this host, or set file_max: null",
    ]);
    expect(plan({ ...HERE, file_max: null }, container("100000")).refusals).toEqual([]);
    expect(plan({ ...HERE }, container("2466248")).refusals).toEqual([]);
  });

  it("a live value lowered after the run fails verify with the number", () => {
    const f = hostFacts({
      kernel: kernelWith("65536", "2466193"),
      login: loginWith({}),
      files: { [SYSCTL_PATH]: "fs.nr_open = 1048576\n" },
    });
    const results = evaluateChecks(plan({}, f, "verify").checks, f);
    const nrOpen = results.find((r) => r.check.kind === "probe" && r.check.label === "fs.nr_open")!;
    expect(nrOpen).toMatchObject({ ok: false, actual: "65536" });
    expect(nrOpen.check.message).toMatch(/below the 1,048,576 that .* sets: something lowered it/);
  });
});

describe("fd-limits refuses what a host cannot take", () => {
  const capped = loginWith({ sshd: "19283", sshd_hard: "20000", sshd_cap_eff: "000001fffeffffff" });

  it.each<[string, Record<string, unknown>, HostShape, RegExp | null]>([
    [
      "hard nofile above the host's nr_open, nr_open not managed",
      { nr_open: null, hard_nofile: 2000000 },
      { login: loginWith({}) },
      /hard_nofile 2,000,000 is above this host's fs\.nr_open 1,048,576: pam_limits' setrlimit\(\) fails with EPERM.*Set nr_open to at least 2,000,000/,
    ],
    ["the role raises nr_open to cover it", { nr_open: 2097152, hard_nofile: 2000000 }, { login: loginWith({}) }, null],
    [
      "the host's nr_open already covers it",
      { nr_open: null, hard_nofile: 2000000 },
      { kernel: kernelWith("4194304", "2466193"), login: loginWith({}) },
      null,
    ],
    [
      "hard nofile above a capped sshd (this machine)",
      { ...HERE, hard_nofile: 30000 },
      { login: capped },
      /hard_nofile 30,000 is above what a login can get on this host: sshd \(pid 19283\) holds hard nofile 20,000 and lacks CAP_SYS_RESOURCE.*Lower hard_nofile to 20,000 or less/,
    ],
    ["the capped sshd's own value is fine", HERE, { login: capped }, null],
    ["a capped sshd, but no login limits written", { ...HERE, hard_nofile: 30000, users: [] }, { login: capped }, null],
    [
      "an sshd with CAP_SYS_RESOURCE can raise",
      { ...HERE, hard_nofile: 30000 },
      { login: loginWith({ sshd_hard: "20000" }) },
      null,
    ],
    [
      "not an SSH session",
      { ...HERE, hard_nofile: 30000 },
      { login: "euid=0\nsession=none\nuser=root\nuid=0\nsoft=1024\nhard=20000\n" },
      null,
    ],
  ])("%s", (_what, over, shape, error) => {
    const p = plan(over, hostFacts(shape));
    if (error) {
      expect(p.refusals.map((r) => r.text)).toEqual([expect.stringMatching(error)]);
      expect(p.changes).toEqual([]);
    } else expect(p.refusals).toEqual([]);
  });

  it("refuses every value the host cannot take in one plan: hard_nofile above fs.nr_open and above what sshd can give", () => {
    const p = plan({ ...HERE, nr_open: null, hard_nofile: 2000000 }, hostFacts({ login: capped }));
    expect(p.refusals.map((r) => r.role)).toEqual(["fd-limits", "fd-limits"]);
    expect(p.refusals.map((r) => r.text)).toEqual([
      expect.stringMatching(
        /^hard_nofile 2,000,000 is above this host's fs\.nr_open 1,048,576: pam_limits' setrlimit\(\) fails with EPERM/,
      ),
      expect.stringMatching(
        /^hard_nofile 2,000,000 is above what a login can get on this host: sshd \(pid 19283\) holds hard nofile 20,000 and lacks CAP_SYS_RESOURCE/,
      ),
    ]);
    expect([p.changes, p.checks, p.notes]).toEqual([[], [], []]);
  });

  it("raises fs.nr_open live before it writes the limits that need it", () => {
    const p = plan(
      { nr_open: 2097152, hard_nofile: 2000000, soft_nofile: 1048576 },
      hostFacts({ login: loginWith({}) }),
    );
    expect(p.changes.map(targetOf).slice(0, 3)).toEqual([SYSCTL_PATH, "fs.nr_open=2097152", LIMITS_PATH]);
  });

  it("verify does not refuse: the fresh-login check fails and names the capped sshd", () => {
    const applied = hostFacts({ login: capped, files: {} });
    const p = plan(HERE, applied, "verify");
    const got = afterRun(p, applied, {
      login: loginWith({
        soft: "10000",
        hard: "10000",
        sshd: "19283",
        sshd_hard: "10000",
        sshd_cap_eff: "000001fffeffffff",
      }),
    });
    const lowered = plan(HERE, got, "verify");
    const failed = evaluateChecks(lowered.checks, got).filter((r) => !r.ok);
    expect(failed.map((r) => [checkName(r.check), r.actual])).toEqual([
      ["fresh login (root): soft nofile equal 16384 (fresh)", "10000"],
      ["fresh login (root): hard nofile equal 20000 (fresh)", "10000"],
    ]);
    expect(failed[0]!.check.message).toMatch(/sshd \(pid 19283\) holds hard nofile 10,000 and lacks CAP_SYS_RESOURCE/);
    expect(lowered.notes.map((n) => n.text)[0]).toMatch(
      /^cannot apply: hard_nofile 20,000 is above what a login can get/,
    );
  });
});

describe("fd-limits: whose fresh login is checked", () => {
  const loginAs = (user: string, uid: string, groups: string) => loginWith({ user, uid, groups });

  it.each<[string, string[], string, boolean, string | null]>([
    ["root is named", ["root"], loginAs("root", "0", "root"), true, null],
    [
      "* never applies to root",
      ["*"],
      loginAs("root", "0", "root"),
      false,
      "the login user root is not matched by users (* and @group lines never apply to root): its fresh login is not checked",
    ],
    [
      "@group never applies to root",
      ["@root"],
      loginAs("root", "0", "root"),
      false,
      "the login user root is not matched by users (* and @group lines never apply to root): its fresh login is not checked",
    ],
    ["* covers deploy", ["*"], loginAs("deploy", "1001", "deploy,sudo"), true, null],
    ["@sudo covers a member", ["@sudo"], loginAs("deploy", "1001", "deploy,sudo"), true, null],
    [
      "@ops does not cover a non-member",
      ["@ops"],
      loginAs("deploy", "1001", "deploy,sudo"),
      false,
      "the login user deploy is not matched by users: its fresh login is not checked",
    ],
  ])("%s", (_what, users, login, checked, note) => {
    const p = plan({ ...HERE, users }, hostFacts({ login }));
    expect(p.checks.some((c) => c.kind === "probe" && c.probe === "fd-limits-login")).toBe(checked);
    if (note) expect(p.notes.map((n) => n.text)).toContain(note);
  });

  it("checks other named users through su -l, and says why it cannot", () => {
    const f = hostFacts({
      login: captured("login-deploy-sudo"),
      users: { root: captured("user-as-root"), app: captured("user-absent"), ops: captured("user-not-root") },
    });
    const p = plan({ ...HERE, users: ["*", "root", "app", "ops", "deploy"] }, f);
    expect(p.checks.filter((c) => c.kind === "probe" && c.freshLogin).map(checkName)).toEqual([
      "fresh login (deploy): soft nofile equal 16384 (fresh)",
      "fresh login (deploy): hard nofile equal 20000 (fresh)",
      "su -l root: soft nofile equal 16384 (fresh)",
      "su -l root: hard nofile equal 20000 (fresh)",
    ]);
    expect(p.notes.map((n) => n.text)).toEqual(
      expect.arrayContaining([
        "user app does not exist on this host: its lines apply once it does; not checked",
        "checking what user ops gets needs root (su -l): log in as root or set ansible_become; not checked",
      ]),
    );
  });

  it("a login that did not get the file's limits fails verify plainly, never a silent pass", () => {
    const f = hostFacts({ login: captured("login-deploy-sudo") });
    const p = plan({ ...HERE, users: ["*"] }, f);
    const after = afterRun(p, f); // the fresh login still gets 4096/8000
    const failed = evaluateChecks(p.checks, after).filter((r) => !r.ok);
    expect(failed.map((r) => [checkName(r.check), r.actual])).toEqual([
      ["fresh login (deploy): soft nofile equal 16384 (fresh)", "4096"],
      ["fresh login (deploy): hard nofile equal 20000 (fresh)", "8000"],
    ]);
    expect(failed[0]!.check.message).toMatch(
      /does not get the soft nofile 16,384 .*: its parent could not raise it \(no CAP_SYS_RESOURCE/,
    );
  });

  it("users: [] writes no limits file and checks no login", () => {
    const p = plan({ ...HERE, users: [] }, hostFacts());
    expect(p.changes.map(targetOf)).not.toContain(LIMITS_PATH);
    expect(p.changes.map(targetOf)).not.toContain(`rm -f -- ${LIMITS_PATH}`);
    expect(p.checks.some((c) => c.kind === "probe" && c.probe === "fd-limits-login")).toBe(false);
  });
});

describe("fd-limits services", () => {
  const running = (soft: number, hard: number) => `via=pgrep\nrunning=yes\npid=4242\nsoft=${soft}\nhard=${hard}\n`;

  it.each<[string, string, boolean]>([
    ["started with the limits", running(16384, 20000), true],
    ["raised its own soft limit further", running(20000, 20000), true],
    ["started before, with less", running(1024, 4096), false],
  ])("a running process (pgrep, no systemd) %s", (_what, raw, ok) => {
    const f = hostFacts({ services: { gateway: raw } });
    const p = plan({ ...HERE, services: ["gateway"] }, f);
    const results = evaluateChecks(
      p.checks.filter((c) => c.kind === "probe" && c.probe === "fd-limits-service"),
      f,
    );
    expect(results.map((r) => checkName(r.check))).toEqual([
      "gateway running: soft nofile at-least 16384",
      "gateway running: hard nofile at-least 20000",
    ]);
    expect(results.every((r) => r.ok)).toBe(ok);
    if (!ok)
      expect(results[0]!.check.message).toBe(
        "gateway (pid 4242) runs with soft nofile 1024, below the 16,384 set for it: systemd does not run here, so the drop-in does not apply: whatever starts gateway must raise its limit, and a parent without CAP_SYS_RESOURCE (e.g. a container) caps it",
      );
    expect(p.notes.map((n) => n.text)).toContain(
      "gateway (pid 4242) is running and keeps its current limit until restarted",
    );
  });

  it("with systemd: daemon-reload after the drop-ins, checks of what systemd loaded and what the process has", () => {
    const f = hostFacts({
      init: SYSTEMD_INIT,
      login: loginWith({}),
      services: { nginx: systemdService("running=yes\npid=812\nsoft=1024\nhard=524288\n") },
    });
    const p = plan({ services: ["nginx"] }, f);
    expect(p.changes.map(targetOf)).toEqual([
      SYSCTL_PATH,
      LIMITS_PATH,
      SYSTEMD_DEFAULT_PATH,
      serviceDropinPath("nginx"),
      "systemctl daemon-reload",
    ]);
    expect(
      p.checks
        .filter((c) => c.kind === "probe" && (c.probe === "fd-limits-init" || c.probe === "fd-limits-service"))
        .map(checkName),
    ).toEqual([
      "systemd DefaultLimitNOFILE (soft) equal 1024",
      "systemd DefaultLimitNOFILE (hard) equal 1048576",
      "nginx.service LimitNOFILE (soft) equal 1048576",
      "nginx.service LimitNOFILE (hard) equal 1048576",
    ]);
    // run cannot change the running process, so it does not check it; verify does, until nginx restarts.
    expect(p.notes.map((n) => n.text)).toContain(
      "restart pending: nginx (pid 812) runs with nofile 1024:524288 and keeps it until restarted (systemctl restart nginx.service, or restart_services: true); verify reports it until then",
    );
    const verifying = plan({ services: ["nginx"] }, f, "verify");
    const processChecks = verifying.checks.filter((c) => c.kind === "probe" && c.label.startsWith("nginx running"));
    expect(evaluateChecks(processChecks, f).map((r) => [checkName(r.check), r.ok])).toEqual([
      ["nginx running: soft nofile at-least 1048576", false],
      ["nginx running: hard nofile at-least 1048576", false],
    ]);
  });

  it("restart_services: the running service restarts after the daemon-reload, then its process is checked", () => {
    const services = (process: string) => ({ nginx: systemdService(process) });
    const shape = (process: string): HostShape => ({
      init: SYSTEMD_INIT,
      login: loginWith({}),
      services: services(process),
    });
    const params = { ...HERE, services: ["nginx"], restart_services: true };
    const p = plan(params, hostFacts(shape("running=yes\npid=812\nsoft=1024\nhard=524288\n")));
    expect(p.changes.map(targetOf).slice(-2)).toEqual(["systemctl daemon-reload", "systemctl restart nginx.service"]);
    expect(p.checks.filter((c) => c.kind === "probe" && c.label.startsWith("nginx running")).map(checkName)).toEqual([
      "nginx running: soft nofile at-least 16384",
      "nginx running: hard nofile at-least 20000",
    ]);
    // Restarted with its limits (new pid), the next plan restarts nothing.
    const after = afterRun(p, hostFacts(shape("running=yes\npid=900\nsoft=16384\nhard=20000\n")));
    expect(plan(params, after).changes.map(targetOf)).toEqual([]);
  });

  it("with systemd and the files in place: no daemon-reload, unless a unit needs one", () => {
    const service = (needReload: string) =>
      systemdService("running=no\n").replace("need_reload=no", `need_reload=${needReload}`);
    const shape = (needReload: string): HostShape => ({
      init: SYSTEMD_INIT,
      login: loginWith({}),
      services: { nginx: service(needReload) },
    });
    const first = plan({ services: ["nginx"] }, hostFacts(shape("no")));
    for (const [needReload, expected] of [
      ["no", []],
      ["yes", ["systemctl daemon-reload"]],
    ] as const) {
      const after = afterRun(first, hostFacts(shape(needReload)));
      expect(plan({ services: ["nginx"] }, after).changes.map(targetOf)).toEqual(expected);
    }
  });

  it("a systemd PID 1 without CAP_SYS_RESOURCE caps services: said in a note", () => {
    const init = SYSTEMD_INIT.replace("pid1_cap_eff=000001ffffffffff", "pid1_cap_eff=000001fffeffffff");
    const p = plan({}, hostFacts({ init, login: loginWith({}) }));
    expect(p.notes.map((n) => n.text)).toContain(
      "systemd (PID 1) holds hard nofile 524,288 without CAP_SYS_RESOURCE: it caps every service at 524,288, below hard_nofile 1,048,576; verify reports running services that got less",
    );
  });

  it("a template gets its drop-in and no process check; an uninstalled unit a note", () => {
    const f = hostFacts({
      init: SYSTEMD_INIT,
      login: loginWith({}),
      services: { api: "via=systemd\nload_state=not-found\nunit_hard=524288\nunit_soft=1024\nrunning=no\n" },
    });
    const p = plan({ services: ["worker@", "api"] }, f);
    expect(p.changes.map(targetOf)).toContain("/etc/systemd/system/worker@.service.d/60-provision-fd-limits.conf");
    expect(p.notes.map((n) => n.text)).toEqual(
      expect.arrayContaining([
        "worker@.service is a template: its drop-in applies to every instance; instances are not checked",
        "api.service is not installed: its drop-in applies once it is",
      ]),
    );
    expect(p.checks.filter((c) => c.kind === "probe" && c.probe === "fd-limits-service")).toEqual([]);
  });

  it("a probe that failed is a refusal naming it and what to do, in plan and verify", () => {
    const f = hostFacts();
    f.probes![probeKey(FD_SERVICE_PROBE.name, "gateway")] = { ok: false, error: "sh: 1: systemctl: Permission denied" };
    for (const purpose of ["plan", "verify"] as const) {
      const p = plan({ ...HERE, services: ["gateway"] }, f, purpose);
      expect(p.refusals.map((r) => r.text)).toEqual([
        expect.stringContaining(
          "could not read fd-limits-service for gateway: sh: 1: systemctl: Permission denied. Let the login run systemctl show",
        ),
      ]);
      expect(p.checks).toEqual([]);
    }
  });

  it("a probe missing from the facts is a refusal too, beside the host's other refusals", () => {
    const f = hostFacts({ login: loginWith({}) });
    delete f.probes![FD_INIT_PROBE.name];
    const p = plan({ nr_open: null, hard_nofile: 2000000, soft_nofile: 1024 }, f);
    expect(p.refusals.map((r) => r.text)).toEqual([
      expect.stringMatching(/^hard_nofile 2,000,000 is above this host's fs\.nr_open/),
      expect.stringMatching(/^fd-limits-init was not gathered/),
    ]);
  });
});

describe("fd-limits removes its own files that the params no longer want", () => {
  const rm = (path: string) => `rm -f -- ${path}`;
  const gateway = serviceDropinPath("gateway");
  const stopped = captured("service-stopped");
  const systemdStopped = systemdService("running=no\n");

  /** The host after a run with `first`: its files written, as the next plan reads them. */
  function appliedWith(first: Record<string, unknown>, shape: HostShape): Facts {
    const before = hostFacts(shape);
    return afterRun(plan(first, before), before);
  }

  it.each<[string, Record<string, unknown>, Record<string, unknown>, HostShape, string[], string[]]>([
    [
      "systemd_default_limit false and a service dropped, no systemd: rm each, no daemon-reload",
      { ...HERE, services: ["gateway"] },
      { ...HERE, services: [], systemd_default_limit: false },
      { services: { gateway: stopped } },
      [rm(SYSTEMD_DEFAULT_PATH), rm(gateway)],
      [
        `systemd_default_limit is false: removing ${SYSTEMD_DEFAULT_PATH}; services started after the next daemon-reload get systemd's own DefaultLimitNOFILE, running ones keep their limit until restarted`,
        `gateway.service is no longer in services: removing ${gateway}; it keeps its current limit until restarted (systemctl restart gateway.service), then gets DefaultLimitNOFILE; provision restarts no service it no longer manages`,
        "systemd is not running here (PID 1 is process_api): no daemon-reload after the removals",
      ],
    ],
    [
      "the same where systemd runs: rm each, then daemon-reload",
      { services: ["gateway"] },
      { services: [], systemd_default_limit: false },
      { init: SYSTEMD_INIT, login: loginWith({}), services: { gateway: systemdStopped } },
      [rm(SYSTEMD_DEFAULT_PATH), rm(gateway), "systemctl daemon-reload"],
      [
        `gateway.service is no longer in services: removing ${gateway}; it keeps its current limit until restarted (systemctl restart gateway.service), then gets DefaultLimitNOFILE; provision restarts no service it no longer manages`,
      ],
    ],
    [
      "one of two services dropped: only its drop-in goes",
      { ...HERE, services: ["gateway", "api"] },
      { ...HERE, services: ["api"] },
      { services: { gateway: stopped, api: stopped } },
      [rm(gateway)],
      [
        `gateway.service is no longer in services: removing ${gateway}; it keeps its current limit until restarted (systemctl restart gateway.service), then gets DefaultLimitNOFILE; provision restarts no service it no longer manages`,
      ],
    ],
    [
      "users emptied: the limits file goes",
      HERE,
      { ...HERE, users: [] },
      {},
      [rm(LIMITS_PATH)],
      [
        `users is empty: removing ${LIMITS_PATH}; PAM sessions opened from now on get the limits of limits.conf or of their parent, sessions already open keep theirs`,
      ],
    ],
    [
      "both kernel values null: the sysctl file goes, nothing live is written",
      HERE,
      { ...HERE, nr_open: null, file_max: null },
      {},
      [rm(SYSCTL_PATH)],
      [
        `nr_open and file_max are both null: removing ${SYSCTL_PATH}; the live values stay (never lowered) until the next boot, which takes the kernel's defaults or other sysctl files`,
      ],
    ],
    [
      "the same service spelled as its unit name: nothing to remove",
      { ...HERE, services: ["gateway"] },
      { ...HERE, services: ["gateway.service"] },
      { services: { gateway: stopped, "gateway.service": stopped } },
      [],
      [],
    ],
  ])("%s", (_what, first, then, shape, changes, notes) => {
    const applied = appliedWith(first, shape);
    const p = plan(then, applied);
    expect(p.changes.map(targetOf)).toEqual(changes);
    expect(p.notes.map((n) => n.text)).toEqual(expect.arrayContaining(notes));

    // verify before the run: each leftover fails, named; after the run: gone, and nothing more to do
    const leftovers = changes.filter((c) => c.startsWith("rm ")).map((c) => c.slice("rm -f -- ".length));
    const verifyBefore = plan(then, applied, "verify");
    const failed = evaluateChecks(verifyBefore.checks, applied).filter(
      (r) => !r.ok && r.check.kind === "file" && r.check.expected === null,
    );
    expect(failed.map((r) => r.check.kind === "file" && r.check.path)).toEqual(leftovers);
    for (const r of failed) expect(r.check.message).toMatch(/ is still there though .*; provision run removes it$/);
    const after = afterRun(p, applied);
    expect(
      evaluateChecks(
        p.checks.filter((c) => c.kind === "file" && c.expected === null),
        after,
      ).every((r) => r.ok),
    ).toBe(true);
    expect(plan(then, after).changes).toEqual([]);
  });

  it("the removal check names the leftover and what it still does", () => {
    const applied = appliedWith({ ...HERE, services: ["gateway"] }, { services: { gateway: stopped } });
    const [result] = evaluateChecks(
      plan({ ...HERE, services: [] }, applied, "verify").checks.filter((c) => c.kind === "file" && c.expected === null),
      applied,
    );
    expect(result).toMatchObject({
      ok: false,
      check: { path: gateway },
      actual: expect.stringContaining("LimitNOFILE=16384:20000"),
    });
    expect(result!.check.message).toBe(
      `${gateway} is still there though gateway.service is no longer in services: systemd gives gateway.service its LimitNOFILE again at the next daemon-reload or boot; provision run removes it`,
    );
  });

  it("never removes a path that is not the role's own, whatever the probe says", () => {
    const f = hostFacts({ files: { [SYSCTL_PATH]: "x", [LIMITS_PATH]: "x" } });
    const foreign = [
      "/etc/passwd",
      `${gateway}.bak`,
      "/etc/systemd/system/nginx.service.d/override.conf",
      "/etc/systemd/system/ssh.socket.d/60-provision-fd-limits.conf",
      "/etc/systemd/system/../x.service.d/60-provision-fd-limits.conf",
    ];
    f.probes![FD_FILES_PROBE.name] = { ok: true, value: { files: foreign, skipped: 0 } };
    const p = plan({ ...HERE, users: [], nr_open: null, file_max: null, systemd_default_limit: false }, f);
    expect(p.changes).toEqual([]);
  });

  it("says when drop-ins in directories no service name has were left alone", () => {
    const f = hostFacts();
    f.probes![FD_FILES_PROBE.name] = parsed(FD_FILES_PROBE, captured("files"));
    expect(plan(HERE, f).notes.map((n) => n.text)).toContain(
      "1 file(s) named 60-provision-fd-limits.conf in directories whose names no service can have were left alone",
    );
  });

  it.each<[string, Record<string, unknown>, RegExp | null]>([
    [
      "hard nofile above the kernel's default",
      { nr_open: null, soft_nofile: 1024, hard_nofile: 2000000 },
      /^nr_open is null, so \/etc\/sysctl\.d\/60-provision-fd-limits\.conf would stop setting the fs\.nr_open 2,097,152 it records: from the next boot fs\.nr_open is the kernel's 1,048,576, below hard_nofile 2,000,000.*Keep nr_open at least 2,000,000, or lower hard_nofile to 1,048,576$/,
    ],
    ["hard nofile within the kernel's default", { nr_open: null, hard_nofile: 1048576 }, null],
    [
      "no file hands out the hard limit any more",
      { nr_open: null, soft_nofile: 1024, hard_nofile: 2000000, users: [], systemd_default_limit: false },
      null,
    ],
  ])("nr_open null after the role raised it: %s", (_what, then, refused) => {
    const applied = appliedWith(
      { nr_open: 2097152, soft_nofile: 1024, hard_nofile: 2000000 },
      { login: loginWith({}), kernel: kernelWith("1048576", "2466193") },
    );
    const refusals = plan(then, applied).refusals.map((r) => r.text);
    expect(refusals).toEqual(refused ? [expect.stringMatching(refused)] : []);
  });
});

describe("fd-limits facts", () => {
  it("reads the probes, every managed file, each service and each named user", () => {
    const p = paramsOf(fdLimits, {
      users: ["*", "root", "@ops", "app"],
      services: ["nginx", "worker@"],
    }) as unknown as FdLimitsParams;
    expect(fdLimits.facts(p)).toEqual([
      { kind: "probe", probe: FD_KERNEL_PROBE },
      { kind: "probe", probe: FD_LOGIN_PROBE },
      { kind: "probe", probe: FD_INIT_PROBE },
      { kind: "probe", probe: FD_FILES_PROBE },
      { kind: "file", path: SYSCTL_PATH },
      { kind: "file", path: LIMITS_PATH },
      { kind: "file", path: SYSTEMD_DEFAULT_PATH },
      { kind: "file", path: "/etc/systemd/system/nginx.service.d/60-provision-fd-limits.conf" },
      { kind: "probe", probe: FD_SERVICE_PROBE, arg: "nginx" },
      { kind: "file", path: "/etc/systemd/system/worker@.service.d/60-provision-fd-limits.conf" },
      { kind: "probe", probe: FD_USER_PROBE, arg: "root" },
      { kind: "probe", probe: FD_USER_PROBE, arg: "app" },
    ]);
  });

  it("gathers every probe its checks name (verify finds a check's probe among them); boot truth comes with the host's requests, not the role's", () => {
    const over = {
      init: SYSTEMD_INIT,
      login: loginWith({}),
      services: { nginx: systemdService("running=yes\npid=812\nsoft=1024\nhard=524288\n") },
      users: { app: captured("user-as-root") },
    };
    const params = { users: ["*", "root", "app"], services: ["nginx"] };
    const p = plan(params, withBootTruth(hostFacts(over)), "verify");
    const named = new Set(p.checks.flatMap((c) => (c.kind === "probe" ? [c.probe] : [])));
    expect([...named].sort()).toEqual(
      [
        FD_INIT_PROBE.name,
        FD_KERNEL_PROBE.name,
        FD_LOGIN_PROBE.name,
        FD_SERVICE_PROBE.name,
        FD_USER_PROBE.name,
        sysctlBootProbe.name,
      ].sort(),
    );
    const gathered = probesOf(hostWith("web01", [[fdLimits, params]]));
    for (const name of named) expect(gathered.has(name), name).toBe(true);
    const noKernel = paramsOf(fdLimits, { nr_open: null, file_max: null }) as unknown as FdLimitsParams;
    expect(fdLimits.facts(noKernel)).not.toContainEqual({ kind: "probe", probe: sysctlBootProbe });
  });
});

describe("fd-limits validate()", () => {
  it.each<[string, Record<string, unknown>, Array<{ param: string; problem: string | RegExp; fix?: string }>]>([
    ["the defaults", {}, []],
    ["this machine's values", HERE, []],
    [
      "soft above hard",
      { soft_nofile: 30000, hard_nofile: 20000 },
      [
        {
          param: "soft_nofile",
          problem: "soft_nofile 30000 is above hard_nofile 20000; pam_limits would silently cut it to the hard limit",
          fix: "lower soft_nofile to 20000 or less, or raise hard_nofile",
        },
      ],
    ],
    [
      "hard above nr_open",
      { hard_nofile: 2000000, soft_nofile: 1024 },
      [
        {
          param: "hard_nofile",
          problem: /hard_nofile 2000000 is above nr_open 1048576: setrlimit\(\) fails with EPERM/,
          fix: "raise nr_open to at least 2000000, or lower hard_nofile to 1048576",
        },
      ],
    ],
    ["hard above the host's nr_open is for plan to judge", { hard_nofile: 2000000, nr_open: null }, []],
    [
      "systemd soft above hard",
      { ...HERE, systemd_default_soft_nofile: 30000 },
      [
        {
          param: "systemd_default_soft_nofile",
          problem: "systemd_default_soft_nofile 30000 is above hard_nofile 20000",
        },
      ],
    ],
    [
      "systemd soft above hard, default not written",
      { ...HERE, systemd_default_soft_nofile: 30000, systemd_default_limit: false },
      [],
    ],
    [
      "one unit twice",
      { services: ["nginx", "nginx.service"] },
      [
        {
          param: "services",
          problem: '"nginx" and "nginx.service" are the same unit nginx.service',
          fix: "list nginx.service once",
        },
      ],
    ],
  ])("%s", (_what, over, expected) => {
    const problems = fdLimits.validate!(paramsOf(fdLimits, over) as unknown as FdLimitsParams);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      expect(problems[i]!.param).toBe(e.param);
      expect(problems[i]!.severity).toBe("error");
      if (typeof e.problem === "string") expect(problems[i]!.problem).toBe(e.problem);
      else expect(problems[i]!.problem).toMatch(e.problem);
      if (e.fix) expect(problems[i]!.fix).toBe(e.fix);
    });
  });
});

describe("fd-limits schema", () => {
  function check(text: string): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    const file = parseYamlText(text, "f.yaml", problems)!;
    validateAgainstSchema(fdLimits.schema, file.data, file, [], problems);
    return problems;
  }

  it("gives every param a default the schema accepts, a why and a fix", () => {
    for (const [key, s] of Object.entries(fdLimits.schema.properties)) {
      expect(s.description.length, key).toBeGreaterThan(150);
      expect(s.fix, key).toBeTruthy();
    }
    expect(paramsOf(fdLimits)).toEqual({
      soft_nofile: 1048576,
      hard_nofile: 1048576,
      nr_open: 1048576,
      file_max: 2097152,
      users: ["*", "root"],
      systemd_default_limit: true,
      systemd_default_soft_nofile: 1024,
      services: [],
      restart_services: false,
    });
    expect(check(`${JSON.stringify(paramsOf(fdLimits))}\n`)).toEqual([]);
  });

  it.each<[string, string, RegExp]>([
    ["a user with a space", "users: ['deploy x']", /invalid form write a user name, @group or \*/],
    ["a user with a newline", 'users: ["deploy\\nroot hard nofile 1"]', /invalid form/],
    ["a user with a shell metacharacter", "users: ['$(reboot)']", /invalid form/],
    ["a user with a path", "users: ['../etc']", /invalid form/],
    ["a user starting with a dash", "users: ['-root']", /invalid form/],
    ["a uid range (not supported)", "users: ['1000:']", /invalid form/],
    ["a service with a slash", "services: ['../../etc/passwd']", /invalid form write a systemd service name/],
    ["a service with ..", "services: ['a..b']", /invalid form/],
    ["a service with a space", "services: ['nginx; reboot']", /invalid form/],
    ["a service starting with a dash", "services: ['-nginx']", /invalid form/],
    ["soft below 1024", "soft_nofile: 512", /out of range \(must be >= 1024\)/],
    ["nr_open above the kernel's ceiling", "nr_open: 2147483648", /out of range/],
    ["a string for a number", "hard_nofile: '20000'", /expected an integer/],
  ])("rejects %s", (_what, yaml, problem) => {
    const problems = check(`${yaml}\n`);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.problem + " " + problems[0]!.fix).toMatch(problem);
  });

  it.each([
    ["users: ['*', root, '@ops', deploy_1, svc.user]"],
    ["services: [nginx, nginx-proxy.service, 'getty@tty1', 'worker@', my_app.v2]"],
    ["nr_open: null"],
    ["file_max: null"],
  ])("accepts %s", (yaml) => {
    expect(check(`${yaml}\n`)).toEqual([]);
  });
});
