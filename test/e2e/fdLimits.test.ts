import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, tempDir, writeFile } from "./helpers.js";
import { expandHostPattern } from "../../src/inventory/hostRange.js";

/** The collapsible section of `verify --format markdown` whose summary names `host` (alone or in a folded list). */
function markdownSectionOf(markdown: string, host: string): string | undefined {
  return markdown.split("<details").find((section) => {
    const hosts = /<summary>(.*?)(?: \(\d+ hosts\))?: /.exec(section)?.[1];
    return (
      hosts !== undefined &&
      hosts
        .split(", ")
        .flatMap((h) => expandHostPattern(h))
        .includes(host)
    );
  });
}

const LIMITS = "/etc/security/limits.d/60-provision-fd-limits.conf";
const SYSCTL = "/etc/sysctl.d/60-provision-fd-limits.conf";
const SYSTEMD_DEFAULT = "/etc/systemd/system.conf.d/60-provision-fd-limits.conf";
const SERVICE_DROPIN = (name: string) => `/etc/systemd/system/${name}.service.d/60-provision-fd-limits.conf`;
/** Every process on this machine has hard nofile 20000 and no CAP_SYS_RESOURCE: values a login can reach. */
const SOFT = 16384;
const HARD = 20000;

/**
 * fd-limits on real sshd hosts: h1 as root, h2 as deploy with sudo, h3 as root (later with its
 * sshd capped lower). fs.nr_open and fs.file-max are global to this machine, so the values asked
 * are at most the machine's: the role must record them and never lower or write them.
 */
describe("fd-limits on a fleet of real hosts", () => {
  let fleet: Fleet;
  let dir: string;
  let inventory: string;
  let common: string[];
  const services = { ok: `fdok${randomBytes(3).toString("hex")}`, low: `fdlow${randomBytes(3).toString("hex")}` };
  const started: ChildProcess[] = [];
  const kernelBefore = { nrOpen: readProc("fs/nr_open"), fileMax: readProc("fs/file-max") };

  const playbook = (params: string) =>
    writeFile(
      dir,
      `play-${randomBytes(4).toString("hex")}.yaml`,
      `- hosts: all\n  roles:\n    - role: fd-limits\n      params: {${params}}\n`,
    );
  const goodParams = () =>
    `soft_nofile: ${SOFT}, hard_nofile: ${HARD}, nr_open: 1048576, file_max: 2097152, users: ['*', root, deployw], services: [${services.ok}, ${services.low}]`;
  let good: string;
  const cat = async (host: string, path: string) =>
    (await fleet.exec(host, `cat ${path} 2>/dev/null || echo ABSENT`)).stdout;

  /** A login through the real OpenSSH client, independent of provision's own read-back. */
  function sshLogin(host: string, user: string): Promise<{ code: number; stdout: string }> {
    const address = fleet.hosts.find((h) => h.name === host)!.address;
    const args = [
      "-i",
      fleet.clientKeyFile,
      "-o",
      `UserKnownHostsFile=${fleet.knownHostsFile}`,
      "-o",
      "BatchMode=yes",
      "-o",
      "ConnectTimeout=5",
      `${user}@${address}`,
      "ulimit -Sn; ulimit -Hn",
    ];
    return new Promise((resolve) => {
      execFile("ssh", args, { timeout: 20_000 }, (err, stdout) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 255) : 0, stdout }),
      );
    });
  }

  /**
   * A stand-in for a service: a copy of sleep named like it, started inside h1 with the given limits.
   * Spawned (not backgrounded by a shell) so this process reaps it: PID 1 here does not reap orphans.
   */
  async function startService(name: string, soft: number, hard: number): Promise<ChildProcess> {
    const bin = join(dir, name);
    copyFileSync("/bin/sleep", bin);
    const child = spawn(
      "nsenter",
      [
        "-t",
        String(fleet.hosts[0]!.sshdPid),
        "-n",
        "-m",
        "-u",
        "--",
        "/bin/sh",
        "-c",
        `ulimit -Sn ${soft}; ulimit -Hn ${hard}; exec ${bin} 300`,
      ],
      { stdio: "ignore" },
    );
    started.push(child);
    for (let i = 0; i < 100; i++) {
      if (readProcSafe(`${child.pid}/comm`) === name) return child;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`fake service ${name} did not start`);
  }

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    dir = tempDir("fd-limits");
    const [h1, h2, h3] = fleet.hosts;
    inventory = writeFile(
      dir,
      "inventory.yml",
      [
        "all:",
        "  vars:",
        "    ansible_user: root",
        `    ansible_ssh_private_key_file: ${fleet.clientKeyFile}`,
        "  hosts:",
        `    h1: { ansible_host: ${h1!.address} }`,
        `    h2: { ansible_host: ${h2!.address}, ansible_user: deploy, ansible_become: true }`,
        `    h3: { ansible_host: ${h3!.address} }`,
        "",
      ].join("\n"),
    );
    common = ["--known-hosts", fleet.knownHostsFile];
    good = playbook(goodParams());
    await startService(services.ok, SOFT, HARD);
  });

  afterAll(async () => {
    for (const child of started) child.kill("SIGKILL");
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a hard nofile above the host's fs.nr_open: a plan error with the numbers, nothing written", async () => {
    const above = playbook(`soft_nofile: ${SOFT}, hard_nofile: 2000000, nr_open: null`);
    const plan = await provision(["plan", inventory, ...common, "--playbook", above]);
    expect(plan.code).toBe(1);
    // Both refusals in one plan: above fs.nr_open, and above what sshd (no CAP_SYS_RESOURCE) can give a login.
    expect(plan.stdout).toMatch(
      /h\[1:3\] \(3 hosts\): FAILED: planning failed, 2 problems:\n\s+- fd-limits: hard_nofile 2,000,000 is above this host's fs\.nr_open 1,048,576: pam_limits' setrlimit\(\) fails with EPERM/,
    );
    expect(plan.stdout).toMatch(
      /- fd-limits: hard_nofile 2,000,000 is above what a login can get on this host: sshd \(pid [^)]+\) holds hard nofile 20,000/,
    );
    const run = await provision(["run", inventory, ...common, "--playbook", above, "--yes"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/Run: 0 changed, 0 unchanged, 3 failed/);
    for (const h of ["h1", "h2", "h3"]) expect(await cat(h, LIMITS)).toBe("ABSENT\n");
  });

  it("refuses a hard nofile above what this host's sshd can grant (20000 without CAP_SYS_RESOURCE), and logins still work", async () => {
    const above = playbook(`soft_nofile: ${SOFT}, hard_nofile: 30000`);
    const run = await provision(["run", inventory, ...common, "--playbook", above, "--yes"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /h\[1:3\] \(3 hosts\): FAILED: planning failed: hard_nofile 30,000 is above what a login can get on this host: sshd \(pid [^)]+\) holds hard nofile 20,000 and lacks CAP_SYS_RESOURCE/,
    );
    expect(run.stdout).toContain("Lower hard_nofile to 20,000 or less");
    for (const h of ["h1", "h2", "h3"]) expect(await cat(h, LIMITS)).toBe("ABSENT\n");
    expect(await sshLogin("h1", "root")).toEqual({ code: 0, stdout: "20000\n20000\n" });
    expect(await sshLogin("h2", "deploy")).toEqual({ code: 0, stdout: "20000\n20000\n" });
  });

  it("plan shows the files and the notes, changes nothing, and exits 2", async () => {
    const r = await provision(["plan", inventory, ...common, "--playbook", good]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`+++ ${LIMITS}`);
    expect(r.stdout).toContain(`+*\tsoft\tnofile\t${SOFT}`);
    expect(r.stdout).toContain(`+root\thard\tnofile\t${HARD}`);
    expect(r.stdout).toContain(`+++ ${SERVICE_DROPIN(services.ok)}`);
    expect(r.stdout).toContain(`+LimitNOFILE=${SOFT}:${HARD}`);
    expect(r.stdout).toContain("+DefaultLimitNOFILE=1024:20000");
    // raise only: the machine's own values are recorded, never a live change
    expect(r.stdout).toContain(`+fs.nr_open = ${kernelBefore.nrOpen}`);
    expect(r.stdout).toContain(`+fs.file-max = ${kernelBefore.fileMax}`);
    expect(r.stdout).not.toMatch(/fs\.(nr_open|file-max): \S+ →/);
    expect(r.stdout).toContain("systemd is not running here (PID 1 is");
    expect(r.stdout).toContain(`${services.low} is not running: no /proc/<pid>/limits check`);
    expect(await cat("h1", LIMITS)).toBe("ABSENT\n");
    // where systemd does not run there is nothing to reload: no command at all
    const json = JSON.parse((await provision(["plan", inventory, ...common, "--playbook", good, "--json"])).stdout) as {
      hosts: Array<{ changes: Array<{ kind: string }> }>;
    };
    expect(json.hosts.flatMap((h) => h.changes.map((c) => c.kind))).toEqual(
      Array(3).fill(["file", "file", "file", "file", "file", "file"]).flat(),
    );
  });

  it("run as root and as deploy with sudo, then verify reads what a fresh login and the running service really get", async () => {
    const run = await provision(["run", inventory, ...common, "--playbook", good, "--yes"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 3 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    expect(readProc("fs/nr_open")).toBe(kernelBefore.nrOpen);
    expect(readProc("fs/file-max")).toBe(kernelBefore.fileMax);
    const files = await fleet.exec(
      "h2",
      `stat -c '%a %U' ${LIMITS} ${SYSCTL} ${SERVICE_DROPIN(services.ok)}; ls -a /etc/security/limits.d`,
    );
    expect(files.stdout).toBe(`644 root\n644 root\n644 root\n.\n..\n60-provision-fd-limits.conf\n`);

    const verify = await provision(["verify", inventory, ...common, "--playbook", good, "--format", "markdown"]);
    expect(verify.code, verify.stdout).toBe(0);
    // Markdown groups hosts (a collapsible section each, its hosts in the summary): each row in its host's section.
    for (const [host, row] of [
      ["h1", `| \`fresh login (root): soft nofile\` | \`${SOFT}\` | \`${SOFT}\` | ok |`],
      ["h1", `| \`fresh login (root): hard nofile\` | \`${HARD}\` | \`${HARD}\` | ok |`],
      ["h1", `| \`su -l deployw: soft nofile\` | \`${SOFT}\` | \`${SOFT}\` | ok |`],
      ["h2", `| \`fresh login (deploy): soft nofile\` | \`${SOFT}\` | \`${SOFT}\` | ok |`],
      ["h2", `| \`fresh login (deploy): hard nofile\` | \`${HARD}\` | \`${HARD}\` | ok |`],
      ["h2", `| \`su -l root: hard nofile\` | \`${HARD}\` | \`${HARD}\` | ok |`],
      ["h1", `| \`${services.ok} running: soft nofile\` | \`>= ${SOFT}\` | \`${SOFT}\` | ok |`],
      ["h1", `| \`fs.nr_open\` | \`>= ${kernelBefore.nrOpen}\` | \`${kernelBefore.nrOpen}\` | ok |`],
    ] as const) {
      expect(markdownSectionOf(verify.stdout, host), verify.stdout).toContain(row);
    }
    // the real OpenSSH client agrees
    expect(await sshLogin("h2", "deploy")).toEqual({ code: 0, stdout: `${SOFT}\n${HARD}\n` });
    expect(await sshLogin("h1", "root")).toEqual({ code: 0, stdout: `${SOFT}\n${HARD}\n` });

    const again = await provision(["plan", inventory, ...common, "--playbook", good]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain("h[1:3] (3 hosts): no changes");
  });

  it("verify catches a hand-edited limits file, in the file and in what a fresh login gets; run repairs it", async () => {
    await fleet.exec("h2", `sed -i 's/\\t${SOFT}$/\\t4096/' ${LIMITS}`);
    expect(await sshLogin("h2", "deploy")).toEqual({ code: 0, stdout: `4096\n${HARD}\n` });
    const verify = await provision(["verify", inventory, ...common, "--playbook", good]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`MISMATCH ${LIMITS}`);
    expect(verify.stdout).toContain(
      `MISMATCH fresh login (deploy): soft nofile: expected ${SOFT}, found 4096 — a fresh SSH login as deploy does not get the soft nofile 16,384`,
    );
    expect(verify.stdout).toMatch(/Verify: \d+\/\d+ checks ok on 2\/3 hosts/);

    const run = await provision(["run", inventory, ...common, "--playbook", good, "--yes"]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/Run: 1 changed, 2 unchanged/);
    expect((await provision(["verify", inventory, ...common, "--playbook", good])).code).toBe(0);
  });

  it("verify fails plainly for a named service running with less than its drop-in sets", async () => {
    const low = await startService(services.low, 1024, 4096);
    try {
      const verify = await provision(["verify", inventory, ...common, "--playbook", good, "--limit", "h1"]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(
        `MISMATCH ${services.low} running: soft nofile: expected >= ${SOFT}, found 1024 — ${services.low} (pid ${low.pid}) runs with soft nofile 1024, below the 16,384 set for it: systemd does not run here, so the drop-in does not apply`,
      );
      expect(verify.stdout).toContain(`MISMATCH ${services.low} running: hard nofile: expected >= ${HARD}, found 4096`);
    } finally {
      low.kill("SIGKILL");
      await new Promise((r) => low.once("exit", r));
    }
    expect((await provision(["verify", inventory, ...common, "--playbook", good, "--limit", "h1"])).code).toBe(0);
  });

  it("a service dropped from services and systemd_default_limit false: plan shows the removals, run removes exactly those files", async () => {
    // applied by the steps above: the default drop-in and one drop-in per service, on every host
    for (const h of ["h1", "h2", "h3"]) {
      for (const path of [SYSTEMD_DEFAULT, SERVICE_DROPIN(services.ok), SERVICE_DROPIN(services.low)])
        expect(await cat(h, path), `${h} ${path}`).not.toBe("ABSENT\n");
    }
    // files that are not the role's, beside its own: never touched
    const foreign = [
      `/etc/systemd/system/${services.ok}.service.d/override.conf`,
      `/etc/systemd/system/${services.ok}.service.d/60-provision-fd-limits.conf.bak`,
      "/etc/systemd/system.conf.d/50-local.conf",
    ];
    await fleet.exec("h1", foreign.map((f) => `printf '# not provision\\n' > ${f}`).join("\n"));

    const without = playbook(
      goodParams().replace(/services: \[[^\]]*\]/, "services: [], systemd_default_limit: false"),
    );
    const plan = await provision(["plan", inventory, ...common, "--playbook", without]);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    for (const path of [SYSTEMD_DEFAULT, SERVICE_DROPIN(services.ok), SERVICE_DROPIN(services.low)])
      expect(plan.stdout).toContain(`rm -f -- ${path}`);
    expect(plan.stdout).toContain(`systemd_default_limit is false: removing ${SYSTEMD_DEFAULT}`);
    expect(plan.stdout).toContain(
      `${services.low}.service is no longer in services: removing ${SERVICE_DROPIN(services.low)}`,
    );
    expect(plan.stdout).toContain("keeps its current limit until restarted");
    expect(plan.stdout).toContain("systemd is not running here (PID 1 is");
    expect(plan.stdout).not.toContain("run: systemctl daemon-reload");
    const json = JSON.parse(
      (await provision(["plan", inventory, ...common, "--playbook", without, "--json"])).stdout,
    ) as { hosts: Array<{ changes: Array<{ kind: string; argv?: string[] }> }> };
    for (const host of json.hosts) {
      expect(host.changes.map((c) => c.argv)).toEqual(
        [SYSTEMD_DEFAULT, SERVICE_DROPIN(services.low), SERVICE_DROPIN(services.ok)]
          .sort()
          .map((p) => ["rm", "-f", "--", p]),
      );
    }

    const run = await provision(["run", inventory, ...common, "--playbook", without, "--yes"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 3 changed, 0 unchanged, 0 failed/);
    for (const h of ["h1", "h2", "h3"]) {
      for (const path of [SYSTEMD_DEFAULT, SERVICE_DROPIN(services.ok), SERVICE_DROPIN(services.low)])
        expect(await cat(h, path), `${h} ${path}`).toBe("ABSENT\n");
      for (const path of [LIMITS, SYSCTL]) expect(await cat(h, path), `${h} ${path}`).not.toBe("ABSENT\n");
    }
    for (const f of foreign) expect(await cat("h1", f)).toBe("# not provision\n");

    const verify = await provision(["verify", inventory, ...common, "--playbook", without]);
    expect(verify.code, verify.stdout).toBe(0);
    const again = await provision(["plan", inventory, ...common, "--playbook", without]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain("h[1:3] (3 hosts): no changes");

    // a leftover put back by hand is drift: verify names it, run removes it again
    await fleet.exec(
      "h2",
      `mkdir -p /etc/systemd/system/${services.low}.service.d && printf 'x\\n' > ${SERVICE_DROPIN(services.low)}`,
    );
    const drift = await provision(["verify", inventory, ...common, "--playbook", without]);
    expect(drift.code).toBe(1);
    expect(drift.stdout).toContain(`${SERVICE_DROPIN(services.low)} is still there`);
    await fleet.exec("h1", `rm -f ${foreign.join(" ")}`);
  });

  it("users: [] and both kernel values null: the limits file and the sysctl file are removed, live values stay", async () => {
    const nothing = playbook(
      `soft_nofile: ${SOFT}, hard_nofile: ${HARD}, nr_open: null, file_max: null, users: [], services: [], systemd_default_limit: false`,
    );
    const plan = await provision(["plan", inventory, ...common, "--playbook", nothing]);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout).toContain(`rm -f -- ${SYSCTL}`);
    expect(plan.stdout).toContain(`rm -f -- ${LIMITS}`);
    expect(plan.stdout).toContain(`rm -f -- ${SERVICE_DROPIN(services.low)}`); // put back by hand on h2 only
    expect(plan.stdout).toContain(`users is empty: removing ${LIMITS}`);
    const run = await provision(["run", inventory, ...common, "--playbook", nothing, "--yes"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    for (const h of ["h1", "h2", "h3"])
      for (const path of [LIMITS, SYSCTL]) expect(await cat(h, path)).toBe("ABSENT\n");
    expect(await cat("h2", SERVICE_DROPIN(services.low))).toBe("ABSENT\n");
    expect(readProc("fs/nr_open")).toBe(kernelBefore.nrOpen);
    expect(readProc("fs/file-max")).toBe(kernelBefore.fileMax);
    expect((await provision(["verify", inventory, ...common, "--playbook", nothing])).code).toBe(0);
    expect((await provision(["plan", inventory, ...common, "--playbook", nothing])).code).toBe(0);

    // and back: the next steps start from the applied role
    const restore = await provision(["run", inventory, ...common, "--playbook", good, "--yes"]);
    expect(restore.code, restore.stdout + restore.stderr).toBe(0);
    expect((await provision(["plan", inventory, ...common, "--playbook", good])).code).toBe(0);
  });

  it("an sshd capped below the file (a parent without CAP_SYS_RESOURCE): verify says so, plan refuses, logins still work", async () => {
    const h3 = fleet.hosts[2]!;
    await fleet.exec("h3", `prlimit --pid ${h3.sshdPid} --nofile=10000:10000`);
    expect(await sshLogin("h3", "root")).toEqual({ code: 0, stdout: "10000\n10000\n" });

    const verify = await provision(["verify", inventory, ...common, "--playbook", good, "--limit", "h3"]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`MISMATCH fresh login (root): hard nofile: expected ${HARD}, found 10000`);
    expect(verify.stdout).toContain(`sshd (pid ${h3.sshdPid}) holds hard nofile 10,000 and lacks CAP_SYS_RESOURCE`);

    const plan = await provision(["plan", inventory, ...common, "--playbook", good, "--limit", "h3"]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain("Lower hard_nofile to 10,000 or less");
    expect((await sshLogin("h3", "root")).code).toBe(0);
  });
});

function readProc(path: string): string {
  return readFileSync(`/proc/sys/${path}`, "utf8").trim();
}

function readProcSafe(path: string): string | null {
  try {
    return readFileSync(`/proc/${path}`, "utf8").trim();
  } catch {
    return null;
  }
}
