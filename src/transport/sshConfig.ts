import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, existsSync, constants as fsConstants } from "node:fs";
import { readFile } from "node:fs/promises";
import { SocketAddress } from "node:net";
import { availableParallelism, homedir, hostname as localHostname, userInfo } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { childEnvironment } from "./childEnvironment.js";
import { RouteError, type RouteRequest, type SshEndpoint, type SshRoute } from "./route.js";
import { ConfigSyntaxError, hostLineMatcher, parseConfigLine, parseJumpList, percentExpand, scanSshConfig, tildeExpand, type ConfigScope, type JumpEntry } from "./sshConfigFiles.js";

/**
 * Resolves how each inventory host is reached the way `ssh HOST` would: `ssh -G` computes the
 * effective settings (ssh_config, inventory overrides as `-o`), ProxyJump hops are resolved as
 * the `ssh -W` processes OpenSSH would start for them. Spawning `ssh -G` costs ~15 ms of CPU, so
 * for large fleets destinations whose names match the same Host lines share two `ssh -G` runs
 * and the result is derived for the others (see resolveGroup).
 */

export interface ResolveRoutesOptions {
  /** --ssh-config FILE, like `ssh -F` (replaces ~/.ssh/config AND /etc/ssh/ssh_config). */
  configFile?: string | undefined;
  /** ssh binary; default "ssh" from PATH. When it is not installed, routes are built from the requests alone (no ssh_config) and `notice` says so. */
  sshBinary?: string | undefined;
  /** Max concurrent `ssh -G` processes; default os.availableParallelism(). */
  concurrency?: number | undefined;
  /** "per-host" runs `ssh -G` for every destination (the reference the hybrid is tested against); default "hybrid". */
  strategy?: "hybrid" | "per-host" | undefined;
}

export interface ResolvedRoutes {
  /** Same order as the requests. */
  routes: Array<SshRoute | RouteError>;
  notice: string | null;
  /** How many `ssh` processes ran (for tests and the bench). */
  sshGCalls: number;
}

export const NO_SSH_NOTICE = "ssh_config not read: the OpenSSH client (ssh) is not installed; install openssh-client to use ~/.ssh/config";

const SSH_G_TIMEOUT_MS = 10_000;
const MAX_JUMP_DEPTH = 10;
/** What `ssh -G` prints as identityfile when none is configured (OpenSSH 9.2, `ssh -G -F none x`). */
const DEFAULT_IDENTITY_FILES = ["~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519", "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa"];
const DEFAULT_USER_KNOWN_HOSTS = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];
const DEFAULT_GLOBAL_KNOWN_HOSTS = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];
/** Host-key checks ssh_config can add that only the OpenSSH client performs: an endpoint with one set goes through it. */
const HOST_KEY_CHECKS_ONLY_OPENSSH_DOES = ["revokedhostkeys", "knownhostscommand"];
/** The `ssh -G` keys an SshEndpoint is built from (and so the only ones a derived result must get right). */
const ENDPOINT_KEYS = [
  "host", "hostname", "user", "port", "identityfile", "identitiesonly", "certificatefile", "userknownhostsfile", "globalknownhostsfile",
  "hostkeyalias", "stricthostkeychecking", "connecttimeout", "serveraliveinterval", "serveralivecountmax", "proxycommand", "proxyjump", "pkcs11provider",
  ...HOST_KEY_CHECKS_ONLY_OPENSSH_DOES, "identityagent",
];
const ENDPOINT_KEY_SET = new Set(ENDPOINT_KEYS);
/** A name no Host pattern is written for, used to ask ssh which files it reads. */
const FILES_PROBE_NAME = "provision-ssh-config-probe";

export async function resolveRoutes(requests: RouteRequest[], opts: ResolveRoutesOptions = {}): Promise<ResolvedRoutes> {
  const local = localUser();
  const files = new FileFacts();
  const argvs = requests.map((r) => requestArgv(r, opts.configFile));
  const binary = findExecutable(opts.sshBinary ?? "ssh");
  if (binary === null) {
    const routes = await Promise.all(requests.map((r, i) => routeWithoutSsh(r, argvs[i]!, local, files)));
    return { routes, notice: NO_SSH_NOTICE, sshGCalls: 0 };
  }
  const sshG = new SshG(binary, opts.concurrency ?? availableParallelism());
  const settings = await resolveTargets(requests, argvs, sshG, local, opts.strategy ?? "hybrid");
  const jumps = new JumpResolver(sshG, local, files);
  const routes = await Promise.all(requests.map((r, i) => routeFor(r, argvs[i]!, settings[i]!, local, files, jumps)));
  return { routes, notice: null, sshGCalls: sshG.calls };
}

// ---------------------------------------------------------------------------------------------
// Requests → ssh argv

/** ssh takes a word starting with `-` as an option, wherever it stands. */
function destinationProblem(destination: string): RouteError | null {
  if (destination === "") return new RouteError("the destination is empty; set ansible_host or give the host a name");
  if (destination.startsWith("-")) return new RouteError(`destination ${JSON.stringify(destination)} starts with "-", which ssh would read as an option; fix ansible_host`);
  return null;
}

/** `[-F file] [-o User=u] [-o Port=p] [-o IdentityFile=k] sshArgs…`: Ansible's ssh plugin order; the first value ssh obtains wins. */
function requestArgv(request: RouteRequest, configFile: string | undefined): string[] {
  const argv = configFile !== undefined ? ["-F", configFile] : [];
  if (request.user !== undefined) argv.push("-o", `User=${configQuote(request.user)}`);
  if (request.port !== undefined) argv.push("-o", `Port=${request.port}`);
  if (request.identityFile !== undefined) argv.push("-o", `IdentityFile=${configQuote(request.identityFile)}`);
  return [...argv, ...request.sshArgs];
}

/** ssh splits `-o` values like config lines, so a value with blanks, quotes or `#` needs quoting. */
function configQuote(value: string): string {
  return value === "" || /[\s"'\\#]/.test(value) ? `"${value.replace(/[\\"']/g, "\\$&")}"` : value;
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
function configFileOf(argv: string[]): string | undefined {
  return optionsOf(argv).filter(([flag]) => flag === "F").at(-1)?.[1];
}

/** What the flags a destination's settings can come from mean as config directives (keyword lower-cased). */
const FLAG_KEYWORDS: Record<string, string> = { l: "user", p: "port", i: "identityfile", J: "proxyjump" };

/** The argv's settings as config directives, in ssh's order (the first value wins); `-o` values ssh would reject are skipped. */
function directivesOf(argv: string[]): Array<{ keyword: string; args: string[] }> {
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
type SshGSettings = ReadonlyMap<string, readonly string[]>;
type SshGResult = SshGSettings | RouteError;
type Tokens = Record<string, string>;

interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Why it could not be started, or null. */
  startError: string | null;
}

class SshG {
  calls = 0;
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  /** By argv: the same destination twice in an inventory, or a bastion shared by many targets, costs one run. */
  private readonly results = new Map<string, Promise<SshGResult>>();

  constructor(private readonly binary: string, concurrency: number) {
    this.limit = createLimiter(Math.max(1, concurrency));
  }

  settings(argv: string[]): Promise<SshGResult> {
    const key = JSON.stringify(argv);
    let result = this.results.get(key);
    if (result === undefined) {
      result = this.run(["-G", "-T", ...argv]).then((r) => (r.code === 0 ? parseSshG(r.stdout) : sshGError(r, configFileOf(argv))));
      this.results.set(key, result);
    }
    return result;
  }

  /** The config files ssh opens for this -F selection (its `-v` log), or null when it fails. */
  async filesRead(configFile: string | undefined): Promise<string[] | null> {
    const result = await this.run(["-v", "-G", "-T", ...(configFile !== undefined ? ["-F", configFile] : []), FILES_PROBE_NAME]);
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
      done({ code, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8"), timedOut, startError });
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
  const check = `ssh -G${configFile !== undefined ? ` -F ${shellQuote(configFile)}` : ""} HOST`;
  if (result.startError !== null) return new RouteError(`ssh -G could not be started: ${result.startError}; check the ssh binary`);
  if (result.timedOut) {
    return new RouteError(`ssh -G did not finish within ${SSH_G_TIMEOUT_MS / 1000} s; a Match exec command or a DNS lookup (CanonicalizeHostname) in ssh_config may hang — run \`${check}\` to see`);
  }
  const lines = result.stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const said = lines.length > 0 ? lines.join("; ") : `exit status ${result.code}`;
  return new RouteError(`OpenSSH rejected the connection settings: ${said}; ${fixFor(said)} (check with \`${check}\`)`);
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

function fixFor(said: string): string {
  if (/Can't open user config file/.test(said)) return "check the --ssh-config path";
  if (/Bad owner or permissions/.test(said)) return "make the file yours and not writable by others (chmod 600)";
  if (/line \d+|bad configuration option/i.test(said)) return "fix the ssh_config line it names";
  if (/jumphost loop/.test(said)) return "the host's ProxyJump leads to itself: exclude it from the Host block that sets ProxyJump (Host * !bastion)";
  if (/invalid characters/.test(said)) return "fix the host name or user in the inventory";
  return "fix what ssh names";
}

// ---------------------------------------------------------------------------------------------
// Targets: per destination, or shared by destinations matching the same Host lines

async function resolveTargets(requests: RouteRequest[], argvs: string[][], sshG: SshG, local: LocalUser, strategy: "hybrid" | "per-host"): Promise<SshGResult[]> {
  const results = new Array<Promise<SshGResult>>(requests.length);
  const resolveAlone = (i: number) => sshG.settings([...argvs[i]!, requests[i]!.destination]);
  const scopes = new ConfigScopes(sshG, local);
  const groups = new Map<string, { argv: string[]; members: GroupMember[] }>();
  requests.forEach((request, index) => {
    const problem = destinationProblem(request.destination);
    if (problem !== null) {
      results[index] = Promise.resolve(problem);
      return;
    }
    const signature = strategy === "hybrid" ? signatureOf(request.destination, argvs[index]!, scopes) : null;
    if (signature === null) {
      results[index] = resolveAlone(index);
      return;
    }
    const group = groups.get(signature) ?? { argv: argvs[index]!, members: [] };
    group.members.push({ index, name: request.destination });
    groups.set(signature, group);
  });
  for (const { argv, members } of groups.values()) {
    const resolved = resolveGroup(members, argv, sshG, () => scopes.verified(configFileOf(argv)));
    members.forEach((member, k) => (results[member.index] = resolved.then((r) => r[k]!)));
  }
  return Promise.all(results);
}

interface GroupMember {
  index: number;
  name: string;
}

/**
 * Destinations with equal signatures get the same settings from ssh_config except where the name
 * itself is substituted (%h in HostName, %n in UserKnownHostsFile…): readconf.c selects blocks
 * only by matching Host patterns against the name as typed, and we refuse configs with Match or
 * CanonicalizeHostname. null: resolve this one with its own `ssh -G`.
 */
function signatureOf(name: string, argv: string[], scopes: ConfigScopes): string | null {
  if (!isTemplatableName(name) || needsOwnResolution(argv)) return null;
  const configFile = configFileOf(argv);
  const scope = scopes.scope(configFile);
  if (scope.unscopable !== null) return null;
  return JSON.stringify([configFile ?? null, argv, nameKind(name), scopes.matchingLines(configFile, name)]);
}

/** Names whose every appearance in `ssh -G` output is the name itself or its lower-case form. */
function isTemplatableName(name: string): boolean {
  if (name.includes(":")) return isCanonicalIPv6(name);
  // inet_aton() forms (10.1, 0x7f.1, 010.0.0.1) are rewritten by ssh, so only canonical dotted quads qualify.
  if (/^[0-9][0-9a-fA-FxX.]*$/.test(name)) return /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(name);
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name);
}

function isCanonicalIPv6(name: string): boolean {
  try {
    return new SocketAddress({ address: name, family: "ipv6" }).address === name;
  } catch {
    return false;
  }
}

/** ssh lower-cases HostName unless it is an address, so these kinds never share a derivation. */
function nameKind(name: string): "address" | "lower" | "mixed" {
  if (name.includes(":") || /^[0-9.]+$/.test(name)) return "address";
  return name === name.toLowerCase() ? "lower" : "mixed";
}

/** `-o CanonicalizeHostname=yes` makes ssh re-read the config for the canonical name (and ask DNS). */
function needsOwnResolution(argv: string[]): boolean {
  return directivesOf(argv).some((d) => d.keyword === "canonicalizehostname" && !["no", "false"].includes(d.args[0]?.toLowerCase() ?? ""));
}

/** Scans of the config files per -F selection, and whether ssh confirmed it reads exactly those files. */
class ConfigScopes {
  private readonly scopes = new Map<string, { scope: ConfigScope; matcher: (name: string) => number[] }>();
  private readonly verifications = new Map<string, Promise<boolean>>();

  constructor(private readonly sshG: SshG, private readonly local: LocalUser) {}

  scope(configFile: string | undefined): ConfigScope {
    return this.scanned(configFile).scope;
  }

  /** The Host lines `name` matches; with the argv, what decides which settings ssh_config gives it. */
  matchingLines(configFile: string | undefined, name: string): number[] {
    return this.scanned(configFile).matcher(name);
  }

  private scanned(configFile: string | undefined): { scope: ConfigScope; matcher: (name: string) => number[] } {
    const key = configFile ?? "";
    let scanned = this.scopes.get(key);
    if (scanned === undefined) {
      const scope = scanSshConfig({ configFile, passwdHome: this.local.home, globHome: this.local.globHome });
      scanned = { scope, matcher: hostLineMatcher(scope.hostLines) };
      this.scopes.set(key, scanned);
    }
    return scanned;
  }

  /**
   * Whether derived settings can be trusted: ssh reads exactly the files the scan found (guards
   * against another build's SSHDIR or an Include resolved differently) and the scan understood
   * every line. Shared errors need no such trust: two probes failing alike is evidence enough.
   */
  verified(configFile: string | undefined): Promise<boolean> {
    const key = configFile ?? "";
    let verification = this.verifications.get(key);
    if (verification === undefined) {
      const scope = this.scope(configFile);
      const expected = scope.files.map((f) => resolve(f));
      verification =
        scope.rejected !== null ? Promise.resolve(false) : this.sshG.filesRead(configFile).then((read) => read !== null && sameList(read.map((f) => resolve(f)), expected));
      this.verifications.set(key, verification);
    }
    return verification;
  }
}

/**
 * Two members (three if they disagree) get their own `ssh -G`; where their outputs agree once each
 * one's name is abstracted out, that shared form is filled in with every other member's name.
 * Probes are chosen so that neither name contains the other, so a name found inside an unrelated
 * value (a path, a user) makes the probes disagree instead of slipping through.
 */
async function resolveGroup(members: GroupMember[], argv: string[], sshG: SshG, templatesTrusted: () => Promise<boolean>): Promise<SshGResult[]> {
  const resolveAlone = (name: string) => sshG.settings([...argv, name]);
  if (members.length <= 2) return Promise.all(members.map((m) => resolveAlone(m.name)));
  const trusted = templatesTrusted();
  const probed = new Map<string, SshGResult>();
  const shared = await sharedForm(probeCandidates(members), resolveAlone, probed);
  const usable = shared !== null && (shared instanceof RouteError || (await trusted)) ? shared : null;
  return Promise.all(members.map((m) => probed.get(m.name) ?? fromSharedForm(usable, m.name, resolveAlone)));
}

/** A result with the destination name replaced by placeholders: settings, or a RouteError message. */
type NamelessForm = Map<string, string[]> | RouteError;

const TYPED_NAME = "\u0000name\u0000";
const LOWER_NAME = "\u0000lower-name\u0000";

function probeCandidates(members: GroupMember[]): string[] {
  const chosen: string[] = [];
  for (const { name } of [...members].sort((a, b) => b.name.length - a.name.length)) {
    const lower = name.toLowerCase();
    if (chosen.every((c) => !c.toLowerCase().includes(lower) && !lower.includes(c.toLowerCase()))) chosen.push(name);
    if (chosen.length === 3) break;
  }
  return chosen;
}

async function sharedForm(candidates: string[], resolveAlone: (name: string) => Promise<SshGResult>, probed: Map<string, SshGResult>): Promise<NamelessForm | null> {
  const forms: NamelessForm[] = [];
  const probe = async (name: string) => {
    const result = await resolveAlone(name);
    probed.set(name, result);
    return withoutName(result, name);
  };
  forms.push(...(await Promise.all(candidates.slice(0, 2).map(probe))));
  if (forms.length === 2 && sameForm(forms[0]!, forms[1]!)) return forms[0]!;
  if (candidates.length < 3) return null;
  const third = await probe(candidates[2]!);
  return forms.find((f) => sameForm(f, third)) ?? null;
}

function withoutName(result: SshGResult, name: string): NamelessForm {
  const abstract = (value: string) => {
    const typed = value.split(name).join(TYPED_NAME);
    return name === name.toLowerCase() ? typed : typed.split(name.toLowerCase()).join(LOWER_NAME);
  };
  if (result instanceof RouteError) return new RouteError(abstract(result.message));
  return new Map([...result].map(([key, values]) => [key, values.map(abstract)]));
}

function hasName(value: string): boolean {
  return value.includes("\u0000");
}

function withName(value: string, name: string): string {
  if (!hasName(value)) return value;
  return value.split(TYPED_NAME).join(name).split(LOWER_NAME).join(name.toLowerCase());
}

function sameForm(a: NamelessForm, b: NamelessForm): boolean {
  if (a instanceof RouteError || b instanceof RouteError) return a instanceof RouteError && b instanceof RouteError && a.message === b.message;
  return a.size === b.size && [...a].every(([key, values]) => sameList(values, b.get(key) ?? []));
}

async function fromSharedForm(form: NamelessForm | null, name: string, resolveAlone: (name: string) => Promise<SshGResult>): Promise<SshGResult> {
  if (form === null) return resolveAlone(name);
  if (form instanceof RouteError) return new RouteError(withName(form.message, name));
  const settings = new Map([...form].map(([key, values]) => [key, values.some(hasName) ? values.map((v) => withName(v, name)) : values]));
  // ssh refuses a ProxyJump whose last hop is the host itself ("jumphost loop"); let it say so.
  return lastJumpIsHostItself(settings) ? resolveAlone(name) : settings;
}

function lastJumpIsHostItself(settings: SshGSettings): boolean {
  const jumps = first(settings, "proxyjump");
  if (jumps === undefined || jumps === "none") return false;
  const last = parseJumpList(jumps);
  return typeof last === "string" || last.at(-1)?.host === first(settings, "hostname");
}

// ---------------------------------------------------------------------------------------------
// Routes and endpoints

async function routeFor(request: RouteRequest, argv: string[], settings: SshGResult, local: LocalUser, files: FileFacts, jumps: JumpResolver): Promise<SshRoute | RouteError> {
  if (settings instanceof RouteError) return settings;
  const target = await endpointFrom(settings, request.destination, [...argv, request.destination], local, files);
  if (target instanceof RouteError) return target;
  const jumpList = first(settings, "proxyjump");
  if (jumpList === undefined || jumpList === "none") return { target, jumps: [] };
  const hops = await jumps.chain(jumpList, configFileOf(argv));
  return hops instanceof RouteError ? hops : { target, jumps: hops };
}

/**
 * For `ProxyJump a,b,c` OpenSSH runs `ssh [-l u] [-p p] -J a,b [-F file] -W … c`, that one runs
 * `ssh -J a … -W … b`, and so on: every hop is resolved with its own ssh_config, the `-J` overrides
 * the ProxyJump/ProxyCommand of all but the first hop, and the first hop's own ProxyJump (if any)
 * puts more hops in front of it.
 */
class JumpResolver {
  private readonly endpoints = new Map<string, Promise<SshEndpoint | RouteError>>();
  private readonly chains = new Map<string, Promise<SshEndpoint[] | RouteError>>();

  constructor(private readonly sshG: SshG, private readonly local: LocalUser, private readonly files: FileFacts) {}

  chain(jumpList: string, configFile: string | undefined): Promise<SshEndpoint[] | RouteError> {
    const key = JSON.stringify([configFile ?? null, jumpList]);
    let chain = this.chains.get(key);
    if (chain === undefined) {
      chain = this.chainFrom(jumpList, configFile, []);
      this.chains.set(key, chain);
    }
    return chain;
  }

  /** `via`: the first hops whose own ProxyJump led here, each as the argv ssh reaches it with. */
  private async chainFrom(jumpList: string, configFile: string | undefined, via: Array<{ argv: string; host: string }>): Promise<SshEndpoint[] | RouteError> {
    const entries = parseJumpList(jumpList);
    if (typeof entries === "string") return new RouteError(`ProxyJump ${jumpList}: ${entries}; write [user@]host[:port] or ssh://[user@]host[:port], comma-separated`);
    const hops: SshEndpoint[] = [];
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[k]!;
      const argv = hopArgv(entry, entries.slice(0, k), configFile);
      const settings = await this.sshG.settings(argv);
      if (settings instanceof RouteError) return new RouteError(`ProxyJump host ${entry.text}: ${settings.message}`);
      if (k === 0) {
        const before = await this.chainBefore({ argv: JSON.stringify(argv), host: entry.host }, settings, configFile, via);
        if (before instanceof RouteError) return before;
        hops.push(...before);
      }
      const endpoint = await this.endpointOf(argv, settings, entry.host);
      if (endpoint instanceof RouteError) return new RouteError(`ProxyJump host ${entry.text}: ${endpoint.message}`);
      hops.push(endpoint);
    }
    return hops;
  }

  /** The first hop is reached directly, so its own ProxyJump applies: those hops come before it. */
  private async chainBefore(hop: { argv: string; host: string }, settings: SshGSettings, configFile: string | undefined, via: Array<{ argv: string; host: string }>): Promise<SshEndpoint[] | RouteError> {
    const ownJumps = first(settings, "proxyjump");
    if (ownJumps === undefined || ownJumps === "none") return [];
    const path = [...via, hop];
    const hosts = path.map((h) => h.host).join(" → ");
    if (via.some((h) => h.argv === hop.argv)) return new RouteError(`ProxyJump loop: ${hosts}; ssh would start proxies forever — remove ProxyJump from the Host block of ${hop.host} or exclude ${hop.host} from it`);
    if (path.length > MAX_JUMP_DEPTH) return new RouteError(`ProxyJump chain deeper than ${MAX_JUMP_DEPTH} hops (${hosts} → …); shorten it`);
    return this.chainFrom(ownJumps, configFile, path);
  }

  private endpointOf(argv: string[], settings: SshGSettings, host: string): Promise<SshEndpoint | RouteError> {
    const key = JSON.stringify(argv);
    let endpoint = this.endpoints.get(key);
    if (endpoint === undefined) {
      endpoint = endpointFrom(settings, host, argv, this.local, this.files);
      this.endpoints.set(key, endpoint);
    }
    return endpoint;
  }
}

/** The argv of the `ssh -W` OpenSSH starts for a hop (ssh.c), destination last. */
function hopArgv(entry: JumpEntry, before: JumpEntry[], configFile: string | undefined): string[] {
  return [
    ...(configFile !== undefined ? ["-F", configFile] : []),
    ...(entry.user !== undefined ? ["-l", entry.user] : []),
    ...(entry.port !== undefined ? ["-p", entry.port] : []),
    ...(before.length > 0 ? ["-J", before.map((e) => e.text).join(",")] : []),
    entry.host,
  ];
}

async function endpointFrom(settings: SshGSettings, alias: string, sshArgv: string[], local: LocalUser, files: FileFacts): Promise<SshEndpoint | RouteError> {
  const hostname = first(settings, "hostname") ?? alias;
  const port = Number(first(settings, "port") ?? "22");
  const user = first(settings, "user") ?? local.name;
  const hostKeyAlias = first(settings, "hostkeyalias") ?? null;
  const tokens = connectionTokens({ hostArg: first(settings, "host") ?? alias, hostname, port, user, hostKeyAlias }, local);
  const configuredIdentities = all(settings, "identityfile");
  const identityFiles = expandPaths("IdentityFile", configuredIdentities.filter((f) => f.toLowerCase() !== "none"), tokens, local);
  if (identityFiles instanceof RouteError) return identityFiles;
  const certificateFiles = expandPaths("CertificateFile", all(settings, "certificatefile"), tokens, local);
  if (certificateFiles instanceof RouteError) return certificateFiles;
  const proxyCommand = proxyCommandOf(settings, tokens);
  if (proxyCommand instanceof RouteError) return proxyCommand;
  return {
    alias,
    hostname,
    port,
    user,
    identityFiles,
    identityFilesConfigured: !sameList(configuredIdentities, DEFAULT_IDENTITY_FILES),
    identitiesOnly: isYes(first(settings, "identitiesonly")),
    certificateFiles,
    knownHostsFiles: knownHostsFiles(settings, local),
    recordHostKeysIn: recordHostKeysIn(settings, local),
    hostKeyName: hostKeyAlias ?? hostname,
    // With HostKeyAlias, ssh looks the key up under the bare alias, whatever the port.
    hostKeyPort: hostKeyAlias === null ? port : 22,
    strictHostKeyChecking: strictHostKeyChecking(first(settings, "stricthostkeychecking")),
    connectTimeoutMs: secondsToMs(first(settings, "connecttimeout")),
    serverAlive: serverAlive(settings),
    proxyCommand,
    sshArgv,
    needsOpenSsh: configOnlyOpenSshHonours(settings) ?? (await openSshOnlyReason(identityFiles, certificateFiles, pkcs11Provider(settings), files)),
  };
}

function pkcs11Provider(settings: SshGSettings): string | null {
  const provider = first(settings, "pkcs11provider");
  return provider === undefined || provider.toLowerCase() === "none" ? null : provider;
}

function first(settings: SshGSettings, key: string): string | undefined {
  return settings.get(key)?.[0];
}

function all(settings: SshGSettings, key: string): readonly string[] {
  return settings.get(key) ?? [];
}

function isYes(value: string | undefined): boolean {
  return value === "yes" || value === "true";
}

/** -G prints the multistate's first spelling: `true`/`false` for yes/no (and `off`). */
function strictHostKeyChecking(value: string | undefined): SshEndpoint["strictHostKeyChecking"] {
  switch (value?.toLowerCase()) {
    case "true":
    case "yes":
      return "yes";
    case "false":
    case "no":
    case "off":
      return "no";
    case "accept-new":
      return "accept-new";
    default:
      return "ask";
  }
}

/** ConnectTimeout prints `none` when unset; 0 means the system's own connect timeout, as unset does. */
function secondsToMs(value: string | undefined): number | null {
  const seconds = Number(value);
  return value === undefined || !Number.isFinite(seconds) || seconds <= 0 ? null : seconds * 1000;
}

function serverAlive(settings: SshGSettings): SshEndpoint["serverAlive"] {
  const intervalMs = secondsToMs(first(settings, "serveraliveinterval"));
  return intervalMs === null ? null : { intervalMs, countMax: Number(first(settings, "serveralivecountmax") ?? "3") };
}

/** -G prints UserKnownHostsFile expanded and GlobalKnownHostsFile as written (ssh tilde-expands it later); `none` means no file. */
function knownHostsFiles(settings: SshGSettings, local: LocalUser): string[] {
  const listed = (key: string) => (first(settings, key) ?? "").split(" ").filter((f) => f !== "" && f.toLowerCase() !== "none");
  return [...listed("userknownhostsfile"), ...listed("globalknownhostsfile")].map((f) => resolve(local.cwd, tildeExpand(f, local.home) ?? f));
}

/** Where accepted new keys go: the first UserKnownHostsFile, as ssh does; none when it is /dev/null or `none`. */
function recordHostKeysIn(settings: SshGSettings, local: LocalUser): string | null {
  const firstUserFile = (first(settings, "userknownhostsfile") ?? "").split(" ")[0] ?? "";
  if (firstUserFile === "" || firstUserFile.toLowerCase() === "none" || firstUserFile === "/dev/null") return null;
  return resolve(local.cwd, tildeExpand(firstUserFile, local.home) ?? firstUserFile);
}

// ---------------------------------------------------------------------------------------------
// Token expansion (ssh.c, sshconnect.c, misc.c percent_expand)

interface LocalUser {
  name: string;
  uid: number;
  /** From the passwd database: ssh takes `~` and %d from there, not from $HOME. */
  home: string;
  /** $HOME, which glob(3) uses for `~` in Include. */
  globHome: string;
  hostname: string;
  cwd: string;
}

function localUser(): LocalUser {
  const info = userInfo();
  return { name: info.username, uid: info.uid, home: info.homedir, globHome: homedir(), hostname: localHostname(), cwd: process.cwd() };
}

/** DEFAULT_CLIENT_PERCENT_EXPAND_ARGS: what IdentityFile, CertificateFile and UserKnownHostsFile may use. */
function connectionTokens(c: { hostArg: string; hostname: string; port: number; user: string; hostKeyAlias: string | null }, local: LocalUser): Tokens {
  const connectionHash = createHash("sha1").update(`${local.hostname}${c.hostname}${c.port}${c.user}`).digest("hex");
  return {
    C: connectionHash,
    L: local.hostname.split(".")[0]!,
    i: String(local.uid),
    k: c.hostKeyAlias ?? c.hostArg,
    l: local.hostname,
    n: c.hostArg,
    p: String(c.port),
    d: local.home,
    h: c.hostname,
    r: c.user,
    u: local.name,
  };
}

/** ssh expands `~`, then %-tokens and ${VAR} in identity and certificate paths only when it loads them; -G prints them as written. */
function expandPaths(keyword: string, paths: readonly string[], tokens: Tokens, local: LocalUser): string[] | RouteError {
  const expanded: string[] = [];
  for (const path of paths) {
    const tilde = tildeExpand(path, local.home);
    if (tilde === null) return new RouteError(`${keyword} ${path}: no such user for ~; write the path out`);
    const result = percentExpand(tilde, tokens, true);
    if (typeof result !== "string") return new RouteError(`${keyword} ${path}: ${result.problem}; OpenSSH would refuse it (it knows %C %d %h %i %k %L %l %n %p %r %u and \${VAR})`);
    // A relative identity path is relative to ssh's working directory.
    expanded.push(resolve(local.cwd, result));
  }
  return expanded;
}

/** ProxyCommand: sshconnect.c expand_proxy_command() knows %h %k %n %p %r only, and no ${VAR}. */
function proxyCommandOf(settings: SshGSettings, tokens: Tokens): string | null | RouteError {
  const command = first(settings, "proxycommand");
  if (command === undefined || command.toLowerCase() === "none") return null;
  const result = percentExpand(command, { h: tokens.h!, k: tokens.k!, n: tokens.n!, p: tokens.p!, r: tokens.r! }, false);
  if (typeof result === "string") return result;
  return new RouteError(`ProxyCommand ${command}: ${result.problem}; OpenSSH would refuse it (ProxyCommand knows %h %k %n %p %r and %%)`);
}

// ---------------------------------------------------------------------------------------------
// What only the OpenSSH client can do

function configOnlyOpenSshHonours(settings: SshGSettings): string | null {
  for (const key of HOST_KEY_CHECKS_ONLY_OPENSSH_DOES) {
    const value = first(settings, key);
    if (value !== undefined) return `ssh_config sets ${key} ${value}, a host-key check only the OpenSSH client performs`;
  }
  const agent = first(settings, "identityagent");
  if (agent !== undefined && agent !== "SSH_AUTH_SOCK" && agent !== process.env.SSH_AUTH_SOCK) return `ssh_config sets IdentityAgent ${agent}`;
  return null;
}

async function openSshOnlyReason(identityFiles: string[], certificateFiles: string[], pkcs11Provider: string | null, files: FileFacts): Promise<string | null> {
  if (pkcs11Provider !== null) return `PKCS11Provider ${pkcs11Provider} is set (keys on a PKCS#11 token)`;
  if (certificateFiles.length > 0) return `CertificateFile ${certificateFiles[0]} is set (a user certificate)`;
  for (const identity of identityFiles) {
    if (!files.exists(identity)) continue;
    // ssh loads <key>-cert.pub next to a key by itself when no CertificateFile is set.
    if (files.exists(`${identity}-cert.pub`)) return `${identity}-cert.pub is a user certificate, which OpenSSH offers with ${identity}`;
    const type = await files.publicKeyType(`${identity}.pub`);
    if (type?.startsWith("sk-")) return `${identity} is a FIDO security key (${type})`;
  }
  return null;
}

/** File checks shared by every endpoint of a run: 10,000 hosts usually name the same few keys. */
class FileFacts {
  private readonly existing = new Map<string, boolean>();
  private readonly keyTypes = new Map<string, Promise<string | null>>();

  /** Synchronous on purpose: for 10,000 per-host key paths that don't exist, a rejected stat() per path costs more than the disk. */
  exists(path: string): boolean {
    let known = this.existing.get(path);
    if (known === undefined) {
      known = existsSync(path);
      this.existing.set(path, known);
    }
    return known;
  }

  /** The key type word of an OpenSSH public key file, or null when there is none. */
  publicKeyType(path: string): Promise<string | null> {
    let known = this.keyTypes.get(path);
    if (known === undefined) {
      known = readFile(path, "utf8").then((text) => /^\s*(\S+)/.exec(text)?.[1] ?? null, () => null);
      this.keyTypes.set(path, known);
    }
    return known;
  }
}

// ---------------------------------------------------------------------------------------------
// Without an ssh binary: the request alone, with OpenSSH's defaults

async function routeWithoutSsh(request: RouteRequest, argv: string[], local: LocalUser, files: FileFacts): Promise<SshRoute | RouteError> {
  const settings = destinationProblem(request.destination) ?? settingsWithoutSsh(request.destination, argv, local);
  if (settings instanceof RouteError) return settings;
  const target = await endpointFrom(settings, request.destination, [...argv, request.destination], local, files);
  return target instanceof RouteError ? target : { target, jumps: [] };
}

/** What `ssh -G` would print for the keys an endpoint uses, from the argv (first value wins) and OpenSSH's defaults. */
function settingsWithoutSsh(destination: string, argv: string[], local: LocalUser): SshGSettings | RouteError {
  const chosen = new Map<string, string[]>();
  const identityFiles: string[] = [];
  const certificateFiles: string[] = [];
  for (const { keyword, args } of directivesOf(argv)) {
    if (keyword === "identityfile") identityFiles.push(...args.slice(0, 1));
    else if (keyword === "certificatefile") certificateFiles.push(...args.slice(0, 1));
    else if (!chosen.has(keyword)) chosen.set(keyword, args);
  }
  for (const [keyword, name] of [["proxyjump", "ProxyJump"], ["proxycommand", "ProxyCommand"]] as const) {
    const value = chosen.get(keyword);
    if (value !== undefined && value[0]?.toLowerCase() !== "none") return new RouteError(`${name} ${value.join(" ")} needs the OpenSSH client, which is not installed; install openssh-client`);
  }
  chosen.set("identityfile", identityFiles.length > 0 ? identityFiles : DEFAULT_IDENTITY_FILES);
  chosen.set("certificatefile", certificateFiles);
  return defaultedSettings(destination, chosen, local);
}

function defaultedSettings(destination: string, chosen: Map<string, string[]>, local: LocalUser): SshGSettings | RouteError {
  const at = destination.lastIndexOf("@");
  const hostArg = at === -1 ? destination : destination.slice(at + 1);
  const one = (key: string, fallback: string) => chosen.get(key)?.[0] ?? fallback;
  const hostnameRaw = percentExpand(one("hostname", "%h"), { h: hostArg }, false);
  if (typeof hostnameRaw !== "string") return new RouteError(`HostName ${one("hostname", "")}: ${hostnameRaw.problem}; only %h and %% are expanded in HostName`);
  const hostname = nameKind(hostnameRaw) === "address" ? hostnameRaw : hostnameRaw.toLowerCase();
  const user = one("user", at === -1 ? local.name : destination.slice(0, at));
  const port = one("port", "22");
  const hostKeyAlias = chosen.get("hostkeyalias")?.[0]?.toLowerCase();
  const tokens = connectionTokens({ hostArg, hostname, port: Number(port), user, hostKeyAlias: hostKeyAlias ?? null }, local);
  const userKnownHosts: string[] = [];
  for (const file of chosen.get("userknownhostsfile") ?? DEFAULT_USER_KNOWN_HOSTS) {
    const expanded = percentExpand(tildeExpand(file, local.home) ?? file, tokens, true);
    if (typeof expanded !== "string") return new RouteError(`UserKnownHostsFile ${file}: ${expanded.problem}`);
    userKnownHosts.push(expanded);
  }
  const settings = new Map<string, string[]>([
    ["host", [hostArg]],
    ["hostname", [hostname]],
    ["user", [user]],
    ["port", [port]],
    ["identityfile", chosen.get("identityfile")!],
    ["certificatefile", chosen.get("certificatefile")!],
    ["userknownhostsfile", [userKnownHosts.join(" ")]],
    ["globalknownhostsfile", [(chosen.get("globalknownhostsfile") ?? DEFAULT_GLOBAL_KNOWN_HOSTS).join(" ")]],
    ["stricthostkeychecking", [one("stricthostkeychecking", "ask")]],
    ["identitiesonly", [one("identitiesonly", "no")]],
    ["connecttimeout", [one("connecttimeout", "none")]],
    ["serveraliveinterval", [one("serveraliveinterval", "0")]],
    ["serveralivecountmax", [one("serveralivecountmax", "3")]],
  ]);
  if (hostKeyAlias !== undefined) settings.set("hostkeyalias", [hostKeyAlias]);
  const pkcs11 = chosen.get("pkcs11provider")?.[0];
  if (pkcs11 !== undefined) settings.set("pkcs11provider", [pkcs11]);
  return settings;
}

// ---------------------------------------------------------------------------------------------

/** The program `spawn` would run, or null: a name is looked up in PATH, a path must be executable. */
function findExecutable(program: string): string | null {
  const candidates = program.includes("/") ? [program] : (process.env.PATH ?? "").split(delimiter).filter((d) => d !== "").map((d) => join(d, program));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
