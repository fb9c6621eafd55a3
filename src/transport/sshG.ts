import { spawn } from "node:child_process";
import { childEnvironment } from "./childEnvironment.js";
import { RouteError } from "./route.js";
import { shQuote } from "./shell.js";
import { ConfigSyntaxError, parseConfigLine } from "./sshConfigFiles.js";

/**
 * Running `ssh -G`: one process per distinct argv (cached, counted, at most `concurrency` at once),
 * its output kept for the keys an endpoint is built from, its failures told as ssh said them.
 * Also what is read from an ssh argv (its -F, its settings as config directives).
 */

const SSH_G_TIMEOUT_MS = 10_000;
/** Host-key checks ssh_config can add that only the OpenSSH client performs: an endpoint with one set goes through it. */
export const HOST_KEY_CHECKS_ONLY_OPENSSH_DOES = ["revokedhostkeys", "knownhostscommand"];
/** The `ssh -G` keys an SshEndpoint is built from (and so the only ones a derived result must get right). */
const ENDPOINT_KEYS = [
  "host",
  "hostname",
  "user",
  "port",
  "identityfile",
  "identitiesonly",
  "certificatefile",
  "userknownhostsfile",
  "globalknownhostsfile",
  "hostkeyalias",
  "stricthostkeychecking",
  "connecttimeout",
  "serveraliveinterval",
  "serveralivecountmax",
  "proxycommand",
  "proxyjump",
  "pkcs11provider",
  ...HOST_KEY_CHECKS_ONLY_OPENSSH_DOES,
  "identityagent",
];
const ENDPOINT_KEY_SET = new Set(ENDPOINT_KEYS);
/** A name no Host pattern is written for, used to ask ssh which files it reads. */
const FILES_PROBE_NAME = "provision-ssh-config-probe";

// ---------------------------------------------------------------------------------------------
// Reading an ssh argv

/** ssh takes a word starting with `-` as an option, wherever it stands. */
export function destinationProblem(destination: string): RouteError | null {
  if (destination === "") return new RouteError("the destination is empty; set ansible_host or give the host a name");
  if (destination.startsWith("-"))
    return new RouteError(
      `destination ${JSON.stringify(destination)} starts with "-", which ssh would read as an option; fix ansible_host`,
    );
  return null;
}

/** ssh's options that take a value (getopt string of OpenSSH 9.2). */
const FLAGS_WITH_VALUE = new Set("BbcDEeFIiJLlmOopQRSWw");

/** The options of an ssh argv that take a value, as [flag, value] pairs, read as getopt does (`-qF file`, `-Ffile`). */
function optionsOf(argv: string[]): Array<[string, string]> {
  const options: Array<[string, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith("-")) continue;
    const at = [...word.slice(1)].findIndex((letter) => FLAGS_WITH_VALUE.has(letter)) + 1;
    if (at === 0) continue;
    const value = word.length > at + 1 ? word.slice(at + 1) : argv[++i];
    if (value !== undefined) options.push([word[at]!, value]);
  }
  return options;
}

/** The `-F` ssh uses: the last one. */
export function configFileOf(argv: string[]): string | undefined {
  return optionsOf(argv)
    .filter(([flag]) => flag === "F")
    .at(-1)?.[1];
}

/** What the flags a destination's settings can come from mean as config directives (keyword lower-cased). */
const FLAG_KEYWORDS: Record<string, string> = { l: "user", p: "port", i: "identityfile", J: "proxyjump" };

/** The argv's settings as config directives, in ssh's order (the first value wins); `-o` values ssh would reject are skipped. */
export function directivesOf(argv: string[]): Array<{ keyword: string; args: string[] }> {
  const directives: Array<{ keyword: string; args: string[] }> = [];
  for (const [flag, value] of optionsOf(argv)) {
    const keyword = FLAG_KEYWORDS[flag];
    if (keyword !== undefined) directives.push({ keyword, args: [value] });
    if (flag !== "o") continue;
    try {
      const directive = parseConfigLine(value, "command line", 0);
      if (directive !== null) directives.push(directive);
    } catch (err) {
      if (!(err instanceof ConfigSyntaxError)) throw err;
    }
  }
  return directives;
}

// ---------------------------------------------------------------------------------------------
// Running ssh -G

/** `ssh -G` output: key → values in printed order (identityfile and certificatefile repeat). */
export type SshGSettings = ReadonlyMap<string, readonly string[]>;
export type SshGResult = SshGSettings | RouteError;

interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Why it could not be started, or null. */
  startError: string | null;
}

export class SshG {
  calls = 0;
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  /** By argv: the same destination twice in an inventory, or a bastion shared by many targets, costs one run. */
  private readonly results = new Map<string, Promise<SshGResult>>();

  constructor(
    private readonly binary: string,
    concurrency: number,
  ) {
    this.limit = createLimiter(Math.max(1, concurrency));
  }

  settings(argv: string[]): Promise<SshGResult> {
    const key = JSON.stringify(argv);
    let result = this.results.get(key);
    if (result === undefined) {
      result = this.run(["-G", "-T", ...argv]).then((r) =>
        r.code === 0 ? parseSshG(r.stdout) : sshGError(r, configFileOf(argv)),
      );
      this.results.set(key, result);
    }
    return result;
  }

  /** The config files ssh opens for this -F selection (its `-v` log), or null when it fails. */
  async filesRead(configFile: string | undefined): Promise<string[] | null> {
    const result = await this.run([
      "-v",
      "-G",
      "-T",
      ...(configFile !== undefined ? ["-F", configFile] : []),
      FILES_PROBE_NAME,
    ]);
    if (result.code !== 0) return null;
    return [...result.stderr.matchAll(/^debug1: Reading configuration data (.*)$/gm)].map((m) => m[1]!);
  }

  private run(args: string[]): Promise<ProcessResult> {
    return this.limit(() => {
      this.calls++;
      return runProcess(this.binary, args, SSH_G_TIMEOUT_MS);
    });
  }
}

/** At most `limit` tasks at once; a finishing task hands its slot straight to the next waiter. */
function createLimiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (active < limit) active++;
    else await new Promise<void>((wake) => waiting.push(wake));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** stdin is /dev/null and the child gets its own session, so nothing it runs (Match exec) can read the terminal. */
function runProcess(file: string, args: string[], timeoutMs: number): Promise<ProcessResult> {
  return new Promise((done) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    let finished = false;
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], detached: true, env: childEnvironment() });
    const finish = (code: number | null, startError: string | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done({
        code,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        timedOut,
        startError,
      });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (err) => finish(null, err.message));
    child.on("close", (code) => finish(timedOut ? null : code, null));
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Keeps only the keys an endpoint is built from: a fleet's worth of full `ssh -G` outputs is a lot of memory. */
function parseSshG(stdout: string): SshGSettings {
  const settings = new Map<string, string[]>();
  for (const line of stdout.split("\n")) {
    const space = line.indexOf(" ");
    const key = (space === -1 ? line : line.slice(0, space)).toLowerCase();
    if (!ENDPOINT_KEY_SET.has(key)) continue;
    const value = space === -1 ? "" : line.slice(space + 1);
    const values = settings.get(key);
    if (values) values.push(value);
    else settings.set(key, [value]);
  }
  return settings;
}

/** ssh's own complaint, without the destination, so hosts failing on the same config line get the same message. */
function sshGError(result: ProcessResult, configFile: string | undefined): RouteError {
  const check = `ssh -G${configFile !== undefined ? ` -F ${shQuote(configFile)}` : ""} HOST`;
  if (result.startError !== null)
    return new RouteError(`ssh -G could not be started: ${result.startError}; check the ssh binary`);
  if (result.timedOut) {
    return new RouteError(
      `ssh -G did not finish within ${SSH_G_TIMEOUT_MS / 1000} s; a Match exec command or a DNS lookup (CanonicalizeHostname) in ssh_config may hang — run \`${check}\` to see`,
    );
  }
  const lines = result.stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const said = lines.length > 0 ? lines.join("; ") : `exit status ${result.code}`;
  return new RouteError(`OpenSSH rejected the connection settings: ${said}; ${fixFor(said)} (check with \`${check}\`)`);
}

function fixFor(said: string): string {
  if (/Can't open user config file/.test(said)) return "check the --ssh-config path";
  if (/Bad owner or permissions/.test(said)) return "make the file yours and not writable by others (chmod 600)";
  if (/line \d+|bad configuration option/i.test(said)) return "fix the ssh_config line it names";
  if (/jumphost loop/.test(said))
    return "the host's ProxyJump leads to itself: exclude it from the Host block that sets ProxyJump (Host * !bastion)";
  if (/invalid characters/.test(said)) return "fix the host name or user in the inventory";
  return "fix what ssh names";
}

export function first(settings: SshGSettings, key: string): string | undefined {
  return settings.get(key)?.[0];
}

export function all(settings: SshGSettings, key: string): readonly string[] {
  return settings.get(key) ?? [];
}
