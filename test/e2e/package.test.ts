import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { SYSTEM_ENV } from "../fleet/shell.js";
import { PROJECT_ROOT, tempDir } from "./helpers.js";

/**
 * The package as users get it: `npm pack` (the files field decides what ships), then
 * `npm i -g` of the tarball into a fresh prefix, then the installed `provision` — its version,
 * help, completion, and a plan over SSH to a real sshd host that presents a host certificate,
 * which only works when the postinstall `patch-package` patched the installed copy's ssh2.
 *
 * `npm pack --ignore-scripts`: `npm test` has built dist/ already (scripts/setup.sh), and the
 * `prepare` script would recompile dist/ under the other suites' running CLIs.
 */

const PACKAGE = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as {
  name: string;
  version: string;
  bin: Record<string, string>;
};
/** npm installs 80-odd packages and builds ssh2's optional native parts: minutes on a busy 2-core machine. */
const INSTALL_TIMEOUT_MS = 480_000;
const CLI_TIMEOUT_MS = 120_000;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A scrubbed environment: nothing of the `npm test` that runs this (npm_config_*, npm_package_*) leaks into npm. */
function environment(dir: string): Record<string, string> {
  const passThrough = ["npm_config_registry", "npm_config_cache", "https_proxy", "http_proxy", "no_proxy"];
  return {
    ...Object.fromEntries(passThrough.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : []))),
    PATH: `${dirname(process.execPath)}:${SYSTEM_ENV.PATH}`,
    HOME: process.env.HOME ?? "/root",
    LANG: "C",
    NO_COLOR: "1",
    TMPDIR: join(dir, "tmp"),
  };
}

function run(file: string, args: string[], opts: { cwd: string; env: Record<string, string>; timeoutMs: number }) {
  return new Promise<Result>((resolve) => {
    const child = execFile(
      file,
      args,
      { cwd: opts.cwd, env: opts.env, timeout: opts.timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ code, stdout, stderr: error && code === null ? `${stderr}\n${error.message}` : stderr });
      },
    );
    // Nothing to read: npm 11 waits on an open stdin (to ask about install scripts) until killed.
    child.stdin?.end();
  });
}

describe("npm pack, npm i -g of the tarball, and the installed provision", () => {
  let dir: string;
  let env: Record<string, string>;
  let files: string[];
  let tarball: string;
  let install: Result;
  let prefix: string;
  let installedRoot: string;
  let bin: string;
  const provision = (args: string[]) => run(bin, args, { cwd: join(dir, "work"), env, timeoutMs: CLI_TIMEOUT_MS });

  beforeAll(async () => {
    dir = tempDir("package");
    for (const sub of ["tmp", "pack", "work"]) mkdirSync(join(dir, sub));
    env = environment(dir);
    const pack = await run(
      "npm",
      ["pack", "--ignore-scripts", "--json", "--pack-destination", join(dir, "pack"), "--loglevel=error"],
      { cwd: PROJECT_ROOT, env, timeoutMs: INSTALL_TIMEOUT_MS },
    );
    expect(pack.code, pack.stderr).toBe(0);
    const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed!.files.map((f) => f.path);
    tarball = join(dir, "pack", packed!.filename);

    prefix = join(dir, "prefix");
    install = await run(
      "npm",
      ["i", "-g", "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund", "--foreground-scripts", tarball],
      { cwd: join(dir, "work"), env, timeoutMs: INSTALL_TIMEOUT_MS },
    );
    installedRoot = join(prefix, "lib", "node_modules", PACKAGE.name);
    bin = join(prefix, "bin", "provision");
  }, INSTALL_TIMEOUT_MS + 60_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the tarball holds what the CLI runs from, and nothing of the tests or the dev scripts", () => {
    expect(files).toEqual(
      expect.arrayContaining([
        "package.json",
        "README.md",
        PACKAGE.bin.provision!.replace(/^\.\//, ""),
        "dist/src/cli.js",
        "dist/src/installRoot.js",
        "dist/src/output/completion.js",
        "dist/roles/ephemeral-ports.js",
        "src/capacity/helper.py",
        "templates/ephemeral-ports/sysctl.conf.hbs",
        "playbooks/site.yaml",
        "docs/roles.md",
        "patches/ssh2+1.17.0.patch",
      ]),
    );
    const forbidden = files.filter((f) =>
      /^(test|scripts|bench|inventory|node_modules|\.ci)\/|^dist\/(test|scripts)\/|^src\/.*\.ts$|\.map$|^tsconfig|^vitest|^eslint/.test(
        f,
      ),
    );
    expect(forbidden).toEqual([]);
  });

  it("installs without devDependencies: postinstall patches the installed ssh2, prepare never runs", () => {
    expect(install.code, install.stdout + install.stderr).toBe(0);
    const out = install.stdout + install.stderr;
    expect(out).toContain(`${PACKAGE.name}@${PACKAGE.version} postinstall`);
    expect(out).toMatch(/ssh2@1\.17\.0 ✔/);
    expect(out).not.toContain(`${PACKAGE.name}@${PACKAGE.version} prepare`);
    const kex = readFileSync(join(installedRoot, "node_modules", "ssh2", "lib", "protocol", "kex.js"), "utf8");
    expect(kex).toContain("PATCH(host-certs)");
    for (const dev of ["typescript", "vitest", "eslint", "prettier"])
      expect(existsSync(join(installedRoot, "node_modules", dev)), dev).toBe(false);
    expect(existsSync(join(installedRoot, "dist", "test"))).toBe(false);
  });

  it("--version is the package's version; --help lists the commands", async () => {
    const version = await provision(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: `${PACKAGE.version}\n`, stderr: "" });
    const help = await provision(["--help"]);
    expect(help.code).toBe(0);
    for (const command of ["plan", "run", "verify", "rollback", "completion"]) expect(help.stdout).toContain(command);
  });

  it("completion bash from the installed copy loads into bash and completes", async () => {
    const script = await provision(["completion", "bash"]);
    expect(script.code, script.stderr).toBe(0);
    const file = join(dir, "work", "provision.bash");
    writeFileSync(file, script.stdout);
    const r = await run(
      "bash",
      [
        "--norc",
        "-c",
        `source ${file} && complete -p provision && COMP_WORDS=(provision ver) COMP_CWORD=1 && _provision && echo "\${COMPREPLY[*]}"`,
      ],
      { cwd: join(dir, "work"), env, timeoutMs: CLI_TIMEOUT_MS },
    );
    expect(r).toMatchObject({ code: 0, stdout: "complete -F _provision provision\nverify\n" });
  });

  describe("plan over SSH, to a host that presents a host certificate", () => {
    let fleet: Fleet;
    beforeAll(async () => {
      fleet = await startFleet({ hosts: 1, hostCertificates: () => ({}) });
    }, 180_000);
    afterAll(async () => {
      await fleet?.stop();
    });

    it("the installed ssh2 negotiates it (patched), and plan shows the changes", async () => {
      expect(install.code).toBe(0);
      const r = await provision([
        "plan",
        fleet.inventoryFile,
        "--known-hosts",
        fleet.certKnownHostsFile!,
        "--ssh-client",
        "ssh2",
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stdout).toMatch(/Plan: \d+ changes on 1 host, 0 unchanged, 0 failed\./);
      expect(r.stdout).toContain("+++ /etc/sysctl.d/60-provision-ephemeral-ports.conf");
    });
  });
});
