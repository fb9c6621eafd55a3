import { accessSync, constants as fsConstants } from "node:fs";
import { availableParallelism } from "node:os";
import { delimiter, join } from "node:path";
import { RouteError, type RouteRequest, type SshEndpoint, type SshRoute } from "./route.js";
import { nameKind, resolveTargets } from "./sshConfigGroups.js";
import { configQuote, parseJumpList, percentExpand, tildeExpand, type JumpEntry } from "./sshConfigFiles.js";
import {
  connectionTokens,
  DEFAULT_IDENTITY_FILES,
  endpointFrom,
  FileFacts,
  localUser,
  type LocalUser,
} from "./sshEndpoint.js";
import {
  configFileOf,
  destinationProblem,
  directivesOf,
  first,
  SshG,
  type SshGResult,
  type SshGSettings,
} from "./sshG.js";

/**
 * Resolves how each inventory host is reached the way `ssh HOST` would: `ssh -G` computes the
 * effective settings (ssh_config, inventory overrides as `-o`), ProxyJump hops are resolved as
 * the `ssh -W` processes OpenSSH would start for them. Spawning `ssh -G` costs ~15 ms of CPU, so
 * for large fleets destinations whose names match the same Host lines share two `ssh -G` runs
 * and the result is derived for the others (see resolveGroup in sshConfigGroups.ts). Running
 * `ssh -G` is sshG.ts; building an endpoint from its output is sshEndpoint.ts.
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

export const NO_SSH_NOTICE =
  "ssh_config not read: the OpenSSH client (ssh) is not installed; install openssh-client to use ~/.ssh/config";

const MAX_JUMP_DEPTH = 10;
const DEFAULT_USER_KNOWN_HOSTS = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];
const DEFAULT_GLOBAL_KNOWN_HOSTS = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

export async function resolveRoutes(
  requests: RouteRequest[],
  opts: ResolveRoutesOptions = {},
): Promise<ResolvedRoutes> {
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

/** `[-F file] [-o User=u] [-o Port=p] [-o IdentityFile=k] sshArgs…`: Ansible's ssh plugin order; the first value ssh obtains wins. */
function requestArgv(request: RouteRequest, configFile: string | undefined): string[] {
  const argv = configFile !== undefined ? ["-F", configFile] : [];
  if (request.user !== undefined) argv.push("-o", `User=${configQuote(request.user)}`);
  if (request.port !== undefined) argv.push("-o", `Port=${request.port}`);
  if (request.identityFile !== undefined) argv.push("-o", `IdentityFile=${configQuote(request.identityFile)}`);
  return [...argv, ...request.sshArgs];
}

/** ssh splits `-o` values like config lines, so a value with blanks, quotes or `#` needs quoting. */

// ---------------------------------------------------------------------------------------------
// Routes and ProxyJump chains

async function routeFor(
  request: RouteRequest,
  argv: string[],
  settings: SshGResult,
  local: LocalUser,
  files: FileFacts,
  jumps: JumpResolver,
): Promise<SshRoute | RouteError> {
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

  constructor(
    private readonly sshG: SshG,
    private readonly local: LocalUser,
    private readonly files: FileFacts,
  ) {}

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
  private async chainFrom(
    jumpList: string,
    configFile: string | undefined,
    via: Array<{ argv: string; host: string }>,
  ): Promise<SshEndpoint[] | RouteError> {
    const entries = parseJumpList(jumpList);
    if (typeof entries === "string")
      return new RouteError(
        `ProxyJump ${jumpList}: ${entries}; write [user@]host[:port] or ssh://[user@]host[:port], comma-separated`,
      );
    const hops: SshEndpoint[] = [];
    for (let k = 0; k < entries.length; k++) {
      const entry = entries[k]!;
      const argv = hopArgv(entry, entries.slice(0, k), configFile);
      const settings = await this.sshG.settings(argv);
      if (settings instanceof RouteError) return new RouteError(`ProxyJump host ${entry.text}: ${settings.message}`);
      if (k === 0) {
        const before = await this.chainBefore(
          { argv: JSON.stringify(argv), host: entry.host },
          settings,
          configFile,
          via,
        );
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
  private async chainBefore(
    hop: { argv: string; host: string },
    settings: SshGSettings,
    configFile: string | undefined,
    via: Array<{ argv: string; host: string }>,
  ): Promise<SshEndpoint[] | RouteError> {
    const ownJumps = first(settings, "proxyjump");
    if (ownJumps === undefined || ownJumps === "none") return [];
    const path = [...via, hop];
    const hosts = path.map((h) => h.host).join(" → ");
    if (via.some((h) => h.argv === hop.argv))
      return new RouteError(
        `ProxyJump loop: ${hosts}; ssh would start proxies forever — remove ProxyJump from the Host block of ${hop.host} or exclude ${hop.host} from it`,
      );
    if (path.length > MAX_JUMP_DEPTH)
      return new RouteError(`ProxyJump chain deeper than ${MAX_JUMP_DEPTH} hops (${hosts} → …); shorten it`);
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

// ---------------------------------------------------------------------------------------------
// Without an ssh binary: the request alone, with OpenSSH's defaults

async function routeWithoutSsh(
  request: RouteRequest,
  argv: string[],
  local: LocalUser,
  files: FileFacts,
): Promise<SshRoute | RouteError> {
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
  for (const [keyword, name] of [
    ["proxyjump", "ProxyJump"],
    ["proxycommand", "ProxyCommand"],
  ] as const) {
    const value = chosen.get(keyword);
    if (value !== undefined && value[0]?.toLowerCase() !== "none")
      return new RouteError(
        `${name} ${value.join(" ")} needs the OpenSSH client, which is not installed; install openssh-client`,
      );
  }
  chosen.set("identityfile", identityFiles.length > 0 ? identityFiles : DEFAULT_IDENTITY_FILES);
  chosen.set("certificatefile", certificateFiles);
  return defaultedSettings(destination, chosen, local);
}

function defaultedSettings(
  destination: string,
  chosen: Map<string, string[]>,
  local: LocalUser,
): SshGSettings | RouteError {
  const at = destination.lastIndexOf("@");
  const hostArg = at === -1 ? destination : destination.slice(at + 1);
  const one = (key: string, fallback: string) => chosen.get(key)?.[0] ?? fallback;
  const hostnameRaw = percentExpand(one("hostname", "%h"), { h: hostArg }, false);
  if (typeof hostnameRaw !== "string")
    return new RouteError(
      `HostName ${one("hostname", "")}: ${hostnameRaw.problem}; only %h and %% are expanded in HostName`,
    );
  const hostname = nameKind(hostnameRaw) === "address" ? hostnameRaw : hostnameRaw.toLowerCase();
  const user = one("user", at === -1 ? local.name : destination.slice(0, at));
  const port = one("port", "22");
  const hostKeyAlias = chosen.get("hostkeyalias")?.[0]?.toLowerCase();
  const tokens = connectionTokens(
    { hostArg, hostname, port: Number(port), user, hostKeyAlias: hostKeyAlias ?? null },
    local,
  );
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
  const candidates = program.includes("/")
    ? [program]
    : (process.env.PATH ?? "")
        .split(delimiter)
        .filter((d) => d !== "")
        .map((d) => join(d, program));
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
