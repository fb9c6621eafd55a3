import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { sysctlProcPath } from "../../src/sysctl/value.js";
import type { SshEndpoint, SshRoute } from "../../src/transport/route.js";
import type { Fleet } from "../fleet/fleet.js";

export const PROJECT_ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = join(PROJECT_ROOT, "bin", "provision.js");

/** The CLI runs from a scratch directory, so run records (.provision/) never land in the repo. */
const WORK_DIR = mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), "provision-test-cwd-"));
process.on("exit", () => rmSync(WORK_DIR, { recursive: true, force: true }));
export function workDir(): string {
  return WORK_DIR;
}

const DEFAULT_CLI_TIMEOUT_MS = 60_000;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `provision` binary (built dist/) as a user would; bounded by a timeout. */
export function provision(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? WORK_DIR,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", NO_COLOR: "1", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `provision ${args.join(" ")} did not finish within ${opts.timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS} ms\n${stdout}\n${stderr}`,
        ),
      );
    }, opts.timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Inside the run's scratch directory, which goes at the end of the run even where a test's afterAll did not get to it. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), `provision-test-${prefix}-`));
}

export function writeFile(dir: string, name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** A route straight to host:port with one key, as sshConfig.ts resolves one for a config that says nothing else. */
export function directRoute(
  hostname: string,
  port: number,
  user: string,
  identityFile: string,
  extra: Partial<SshEndpoint> = {},
): SshRoute {
  return {
    jumps: [],
    target: {
      alias: hostname,
      hostname,
      port,
      user,
      identityFiles: [identityFile],
      identityFilesConfigured: true,
      identitiesOnly: true,
      certificateFiles: [],
      knownHostsFiles: [],
      recordHostKeysIn: null,
      hostKeyName: hostname,
      hostKeyPort: port,
      strictHostKeyChecking: "yes",
      connectTimeoutMs: null,
      serverAlive: null,
      proxyCommand: null,
      sshArgv: [
        "-F",
        "none",
        "-o",
        `User=${user}`,
        "-o",
        `Port=${port}`,
        "-o",
        `IdentityFile=${identityFile}`,
        hostname,
      ],
      needsOpenSsh: null,
      ...extra,
    },
  };
}

/** The live values of sysctl keys on a fleet host, in order, as the kernel prints them (tabs kept). */
/** Any fleet that runs commands on its hosts: the plain one or the systemd one. */
type Runs = Pick<Fleet, "exec">;

export async function readSysctls(fleet: Runs, host: string, keys: readonly string[]): Promise<string[]> {
  const r = await fleet.exec(host, keys.map((key) => `cat ${sysctlProcPath(key)}`).join("; "));
  return r.stdout.trim().split("\n");
}

export async function readSysctl(fleet: Runs, host: string, key: string): Promise<string> {
  return (await readSysctls(fleet, host, [key]))[0]!;
}

/** Pids of this machine's processes whose command line contains `text` (this process excluded). */
export function processesMentioning(text: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** h1 as root, and `down`, an address of the fleet where nothing listens on the port (refused at once). */
export function inventoryWithOneDown(fleet: Fleet, dir: string): string {
  return writeFile(
    dir,
    "one-down.yml",
    [
      "all:",
      "  vars:",
      "    ansible_user: root",
      `    ansible_ssh_private_key_file: ${fleet.clientKeyFile}`,
      "  hosts:",
      `    h1: { ansible_host: ${fleet.hosts[0]!.address} }`,
      `    down: { ansible_host: ${fleet.hosts[1]!.address}, ansible_port: 1 }`,
      "",
    ].join("\n"),
  );
}
