import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  FD_FILES_PROBE,
  FD_INIT_PROBE,
  FD_KERNEL_PROBE,
  FD_LOGIN_PROBE,
  FD_SERVICE_PROBE,
  FD_USER_PROBE,
  hasCapSysResource,
  isOwnFile,
  ownFilesCommand,
  parseKeyValues,
  serviceOfDropin,
  processName,
  unitName,
} from "../../src/facts/fdLimits.js";
import { ProbeParseError, type AnyProbe } from "../../src/facts/probe.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "fd-limits");
/** Probe output captured on this machine's fleet: see test/fixtures/fd-limits/README.md. */
const captured = (name: string) => readFileSync(join(FIXTURES, `${name}.txt`), "utf8");
const CAPTURED = {
  kernel: captured("kernel"),
  loginRoot: captured("login-root"),
  loginDeploySudo: captured("login-deploy-sudo"),
  init: captured("init"),
  serviceRunning: captured("service-running"),
  serviceStopped: captured("service-stopped"),
  userAsRoot: captured("user-as-root"),
  userNotRoot: captured("user-not-root"),
  userAbsent: captured("user-absent"),
  files: captured("files"),
};

/** Not capturable here (PID 1 is not systemd): the lines `systemctl show -p …` prints, through the probe's sed. */
const SYSTEMD = {
  init: "pid1=systemd\nsystemd=yes\npid1_hard=524288\npid1_cap_eff=000001ffffffffff\ndefault_hard=524288\ndefault_soft=1024\n",
  serviceRunning:
    "via=systemd\nload_state=loaded\nneed_reload=no\nunit_hard=524288\nunit_soft=1024\nrunning=yes\npid=812\nsoft=1024\nhard=524288\n",
};

describe("fd-limits probe parsers on output captured on this machine", () => {
  const sshd = { pid: 19283, hard: 20000, capSysResource: false };
  it.each<[string, AnyProbe, string, string | undefined, unknown]>([
    ["kernel", FD_KERNEL_PROBE, CAPTURED.kernel, undefined, { nr_open: 1048576, file_max: "2466193", writable: true }],
    [
      "a root login",
      FD_LOGIN_PROBE,
      CAPTURED.loginRoot,
      undefined,
      { euid: 0, session: 26223, user: "root", uid: 0, nofile: { soft: 20000, hard: 20000 }, groups: ["root"], sshd },
    ],
    [
      "deploy's login read under sudo",
      FD_LOGIN_PROBE,
      CAPTURED.loginDeploySudo,
      undefined,
      {
        euid: 0,
        session: 26989,
        user: "deploy",
        uid: 1001,
        nofile: { soft: 4096, hard: 8000 },
        groups: ["deploy"],
        sshd,
      },
    ],
    [
      "no sshd above the shell",
      FD_LOGIN_PROBE,
      "euid=0\nsession=none\nuser=root\nuid=0\nsoft=1024\nhard=4096\n",
      undefined,
      { euid: 0, session: null, user: "root", uid: 0, nofile: { soft: 1024, hard: 4096 }, groups: [], sshd: null },
    ],
    [
      "PID 1 not systemd",
      FD_INIT_PROBE,
      CAPTURED.init,
      undefined,
      { systemd: false, pid1: "process_api", pid1Hard: 32768, pid1CapSysResource: true, defaultNofile: {} },
    ],
    [
      "PID 1 systemd",
      FD_INIT_PROBE,
      SYSTEMD.init,
      undefined,
      {
        systemd: true,
        pid1: "systemd",
        pid1Hard: 524288,
        pid1CapSysResource: true,
        defaultNofile: { hard: 524288, soft: 1024 },
      },
    ],
    [
      "a running process found by pgrep",
      FD_SERVICE_PROBE,
      CAPTURED.serviceRunning,
      "sshd",
      {
        via: "pgrep",
        loadState: null,
        needReload: false,
        unitNofile: {},
        process: { pid: 19283, nofile: { soft: 20000, hard: 20000 } },
      },
    ],
    [
      "no such process",
      FD_SERVICE_PROBE,
      CAPTURED.serviceStopped,
      "nosuch",
      { via: "pgrep", loadState: null, needReload: false, unitNofile: {}, process: null },
    ],
    [
      "a systemd unit with a MainPID",
      FD_SERVICE_PROBE,
      SYSTEMD.serviceRunning,
      "nginx",
      {
        via: "systemd",
        loadState: "loaded",
        needReload: false,
        unitNofile: { hard: 524288, soft: 1024 },
        process: { pid: 812, nofile: { soft: 1024, hard: 524288 } },
      },
    ],
    [
      "a stopped systemd unit (MainPID=0)",
      FD_SERVICE_PROBE,
      "via=systemd\nload_state=loaded\nunit_hard=20000\nunit_soft=16384\nneed_reload=no\nrunning=no\n",
      "nginx",
      {
        via: "systemd",
        loadState: "loaded",
        needReload: false,
        unitNofile: { hard: 20000, soft: 16384 },
        process: null,
      },
    ],
    [
      "su -l as root",
      FD_USER_PROBE,
      CAPTURED.userAsRoot,
      "deploy",
      { exists: true, nofile: { soft: 4096, hard: 8000 } },
    ],
    [
      "su -l warns about a missing home",
      FD_USER_PROBE,
      "exists=yes\nchecked=yes\nsu: warning: cannot change directory to /nonexistent: No such file or directory\nsoft=1024\nhard=4096\n",
      "nobody",
      { exists: true, nofile: { soft: 1024, hard: 4096 } },
    ],
    ["not root: not checked", FD_USER_PROBE, CAPTURED.userNotRoot, "deploy", { exists: true, nofile: null }],
    ["no such user", FD_USER_PROBE, CAPTURED.userAbsent, "nosuch", { exists: false, nofile: null }],
  ])("%s", (_what, probe, raw, arg, expected) => {
    expect(probe.parse(raw, arg)).toEqual(expected);
  });

  it.each<[string, AnyProbe, string, RegExp]>([
    ["kernel without file-max", FD_KERNEL_PROBE, "nr_open=1048576\nfs_writable=yes\n", /no file_max/],
    [
      "kernel with a word for a number",
      FD_KERNEL_PROBE,
      "nr_open=lots\nfile_max=1\nfs_writable=yes\n",
      /nr_open is "lots", not a number/,
    ],
    [
      "a login without its sshd's limits",
      FD_LOGIN_PROBE,
      "euid=0\nsession=5\nuid=0\nuser=root\nsoft=1\nhard=2\nsshd=4\n",
      /no sshd_hard, sshd_cap_eff/,
    ],
    [
      "a login with a broken capability mask",
      FD_LOGIN_PROBE,
      CAPTURED.loginRoot.replace("000001fffeffffff", "xyz"),
      /not a capability mask/,
    ],
    [
      "a login that printed an error instead",
      FD_LOGIN_PROBE,
      "awk: cannot open /proc/1/status\n",
      /no euid, session, user, uid, soft, hard/,
    ],
    ["init without its systemd line", FD_INIT_PROBE, "pid1=init\n", /no systemd/],
    ["a running service without limits", FD_SERVICE_PROBE, "via=pgrep\nrunning=yes\npid=5\n", /no soft, hard/],
    ["su that printed no limits", FD_USER_PROBE, "exists=yes\nchecked=yes\n", /no soft, hard/],
  ])("refuses %s", (_what, probe, raw, error) => {
    expect(() => probe.parse(raw, "x")).toThrow(ProbeParseError);
    expect(() => probe.parse(raw, "x")).toThrow(error);
  });

  it("keeps only key=value lines", () => {
    expect(parseKeyValues("a=1\nnoise here\n b=two words \nC=upper\n=x\n")).toEqual({ a: "1", b: "two words" });
  });
});

describe("CAP_SYS_RESOURCE (bit 24 of CapEff)", () => {
  it.each<[string, boolean]>([
    ["000001fffeffffff", false], // this machine: every capability but CAP_SYS_RESOURCE
    ["000001ffffffffff", true],
    ["0000000001000000", true],
    ["0000000000ffffff", false],
    ["0", false],
  ])("%s → %s", (mask, expected) => {
    expect(hasCapSysResource(mask)).toBe(expected);
  });
});

describe("service names", () => {
  it.each<[string, string, string | null]>([
    ["nginx", "nginx.service", "nginx"],
    ["nginx.service", "nginx.service", "nginx"],
    ["getty@tty1", "getty@tty1.service", "getty"],
    ["worker@.service", "worker@.service", null],
    ["my.gateway", "my.gateway.service", "my.gateway"],
    ["a-very-long-service-name", "a-very-long-service-name.service", "a-very-long-ser"],
  ])("%s → unit %s, process %s", (service, unit, comm) => {
    expect(unitName(service)).toBe(unitName(unit));
    expect(unitName(service)).toBe(unit);
    expect(processName(service)).toBe(comm);
  });

  it("quotes the unit and escapes dots in the pgrep pattern", () => {
    const cmd = FD_SERVICE_PROBE.script("my.gateway");
    expect(cmd).toContain(
      "systemctl show -p MainPID -p LimitNOFILE -p LimitNOFILESoft -p NeedDaemonReload -p LoadState my.gateway.service </dev/null",
    );
    expect(cmd).toContain("pgrep -x 'my\\.gateway' </dev/null");
  });

  it("never looks for a process of a template", () => {
    expect(FD_SERVICE_PROBE.script("worker@")).toContain("  pid=\n");
  });

  it("passes a user name to su only as one quoted word", () => {
    expect(FD_USER_PROBE.script("deploy")).toContain("u=deploy\n");
    expect(FD_USER_PROBE.script("o'hara")).toContain("u='o'\\''hara'\n");
    expect(FD_USER_PROBE.script("deploy")).toContain(`su -s /bin/sh -l "$u" -c`);
  });
});

/** The commands really run in sh on this machine (they only read /proc). */
describe("fd-limits probe commands in a real shell", () => {
  const run = (probe: AnyProbe, arg?: string) =>
    execFileSync("/bin/sh", ["-c", probe.script(arg)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const procValue = (path: string) => readFileSync(path, "utf8").trim();

  it("kernel: the machine's fs.nr_open and fs.file-max", () => {
    expect(FD_KERNEL_PROBE.parse(run(FD_KERNEL_PROBE), undefined)).toEqual({
      nr_open: Number(procValue("/proc/sys/fs/nr_open")),
      file_max: procValue("/proc/sys/fs/file-max"),
      writable: true,
    });
  });

  it("init: PID 1 and whether systemd runs", () => {
    const fields = FD_INIT_PROBE.parse(run(FD_INIT_PROBE), undefined);
    expect(fields.pid1).toBe(procValue("/proc/1/comm"));
    expect(typeof fields.systemd).toBe("boolean");
  });

  it("login: this process's own limits when no sshd is above it, else its session's", () => {
    const fields = FD_LOGIN_PROBE.parse(run(FD_LOGIN_PROBE), undefined);
    expect(fields.euid).toBe(process.getuid?.());
    expect(String(fields.nofile.soft)).toMatch(/^(\d+|unlimited)$/);
  });

  it("service: a name no process has is not running", () => {
    expect(
      FD_SERVICE_PROBE.parse(run(FD_SERVICE_PROBE, "no-such-fd-limits-test-svc"), "no-such-fd-limits-test-svc"),
    ).toMatchObject({ process: null });
  });
});

describe("fd-limits-files: the role's own files on the host", () => {
  const NAME = "60-provision-fd-limits.conf";

  it.each<[string, string, { files: string[]; skipped: number }]>([
    [
      "captured on a fleet host (one in a directory no service name has)",
      CAPTURED.files,
      {
        files: [
          `/etc/security/limits.d/${NAME}`,
          `/etc/systemd/system.conf.d/${NAME}`,
          `/etc/systemd/system/nginx.service.d/${NAME}`,
          `/etc/systemd/system/worker@.service.d/${NAME}`,
        ],
        skipped: 1,
      },
    ],
    ["none on the host", "done=yes\n", { files: [], skipped: 0 }],
    [
      "a listed path that is not the role's own is counted, never listed",
      `file=/etc/passwd\nfile=/etc/systemd/system/a.service.d/${NAME}.bak\nfile=/etc/sysctl.d/${NAME}\ndone=yes\n`,
      { files: [`/etc/sysctl.d/${NAME}`], skipped: 2 },
    ],
  ])("%s", (_what, raw, expected) => {
    expect(FD_FILES_PROBE.parse(raw, undefined)).toEqual(expected);
  });

  it("refuses a listing that did not finish", () => {
    expect(() => FD_FILES_PROBE.parse(`file=/etc/sysctl.d/${NAME}\n`, undefined)).toThrow(
      /fd-limits-files: the listing did not finish/,
    );
  });

  it.each<[string, string | null]>([
    [`/etc/sysctl.d/${NAME}`, null],
    [`/etc/security/limits.d/${NAME}`, null],
    [`/etc/systemd/system.conf.d/${NAME}`, null],
    [`/etc/systemd/system/nginx.service.d/${NAME}`, "nginx.service"],
    [`/etc/systemd/system/worker@.service.d/${NAME}`, "worker@.service"],
    [`/etc/systemd/system/getty@tty1.service.d/${NAME}`, "getty@tty1.service"],
    [`/etc/systemd/system/a..service.d/${NAME}`, "a..service"],
  ])("%s is the role's own file", (path, unit) => {
    expect(isOwnFile(path)).toBe(true);
    expect(serviceOfDropin(path)).toBe(unit);
  });

  it.each([
    "/etc/passwd",
    `/etc/sysctl.d/${NAME}.bak`,
    `/etc/systemd/system/nginx.service.d/override.conf`,
    `/etc/systemd/system/nginx.service.d/${NAME}.bak`,
    `/etc/systemd/system/nginx.service.d/x${NAME}`,
    `/etc/systemd/system/ssh.socket.d/${NAME}`,
    `/etc/systemd/system/..service.d/${NAME}`,
    `/etc/systemd/system/../../etc.service.d/${NAME}`,
    `/etc/systemd/system/a/b.service.d/${NAME}`,
    `/etc/systemd/system/.service.d/${NAME}`,
    `/etc/systemd/system/-x.service.d/${NAME}`,
    `/etc/systemd/system/a b.service.d/${NAME}`,
    `/etc/systemd/system/a$(reboot).service.d/${NAME}`,
    `/etc/systemd/system/a,b.service.d/${NAME}`,
    `/etc/systemd/system/a\n.service.d/${NAME}`,
    `/etc/systemd/system/nginx.service.d/${NAME}\n`,
    `/lib/systemd/system/nginx.service.d/${NAME}`,
    `etc/systemd/system/nginx.service.d/${NAME}`,
    `//etc/systemd/system/nginx.service.d/${NAME}`,
    "",
  ])("%j is never the role's own file", (path) => {
    expect(isOwnFile(path)).toBe(false);
  });

  it("answers the files as a list, in path order", () => {
    expect(FD_FILES_PROBE.parse("done=yes\n", undefined).files).toEqual([]);
    expect(
      FD_FILES_PROBE.parse(`file=/etc/sysctl.d/${NAME}\nfile=/etc/security/limits.d/${NAME}\ndone=yes\n`, undefined)
        .files,
    ).toEqual([`/etc/security/limits.d/${NAME}`, `/etc/sysctl.d/${NAME}`]);
  });

  it("lists exactly the role's files in a real shell, whatever else the directories hold", () => {
    const root = mkdtempSync(join(tmpdir(), "fd-limits-files-"));
    try {
      const put = (dir: string, name = NAME) => {
        mkdirSync(join(root, dir), { recursive: true });
        writeFileSync(join(root, dir, name), "x\n");
      };
      put("etc/sysctl.d");
      put("etc/systemd/system.conf.d");
      put("etc/systemd/system/nginx.service.d");
      put("etc/systemd/system/nginx.service.d", "override.conf");
      put("etc/systemd/system/nginx.service.d", `${NAME}.bak`);
      put("etc/systemd/system/worker@.service.d");
      put("etc/systemd/system/ssh.socket.d");
      put("etc/systemd/system/bad name.service.d");
      put("etc/systemd/system/x$(touch pwned).service.d");
      put("etc/systemd/system/nl\n.service.d");
      mkdirSync(join(root, "etc/systemd/system/dangling.service.d"));
      symlinkSync("/nonexistent", join(root, "etc/systemd/system/dangling.service.d", NAME));
      const raw = execFileSync("/bin/sh", ["-c", ownFilesCommand(root)], {
        encoding: "utf8",
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      });
      expect(FD_FILES_PROBE.parse(raw.replaceAll(`file=${root}/`, "file=/"), undefined)).toEqual({
        files: [
          `/etc/sysctl.d/${NAME}`,
          `/etc/systemd/system.conf.d/${NAME}`,
          `/etc/systemd/system/dangling.service.d/${NAME}`,
          `/etc/systemd/system/nginx.service.d/${NAME}`,
          `/etc/systemd/system/worker@.service.d/${NAME}`,
        ],
        skipped: 3,
      });
      expect(() => readFileSync(join(root, "pwned"))).toThrow();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
