import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir, hostname as localHostname, userInfo } from "node:os";
import { resolve } from "node:path";
import { RouteError, type SshEndpoint } from "./route.js";
import { percentExpand, tildeExpand } from "./sshConfigFiles.js";
import { all, first, HOST_KEY_CHECKS_ONLY_OPENSSH_DOES, type SshGSettings } from "./sshG.js";

/**
 * Building an SshEndpoint from `ssh -G` settings: the values ssh expands only when it uses them
 * (~, %-tokens, ${VAR}) are expanded here, and what only the OpenSSH client can do is named.
 */

/** What `ssh -G` prints as identityfile when none is configured (OpenSSH 9.2, `ssh -G -F none x`). */
export const DEFAULT_IDENTITY_FILES = [
  "~/.ssh/id_rsa",
  "~/.ssh/id_ecdsa",
  "~/.ssh/id_ecdsa_sk",
  "~/.ssh/id_ed25519",
  "~/.ssh/id_ed25519_sk",
  "~/.ssh/id_xmss",
  "~/.ssh/id_dsa",
];

export async function endpointFrom(
  settings: SshGSettings,
  alias: string,
  sshArgv: string[],
  local: LocalUser,
  files: FileFacts,
): Promise<SshEndpoint | RouteError> {
  const hostname = first(settings, "hostname") ?? alias;
  const port = Number(first(settings, "port") ?? "22");
  const user = first(settings, "user") ?? local.name;
  const hostKeyAlias = first(settings, "hostkeyalias") ?? null;
  const tokens = connectionTokens(
    { hostArg: first(settings, "host") ?? alias, hostname, port, user, hostKeyAlias },
    local,
  );
  const configuredIdentities = all(settings, "identityfile");
  const identityFiles = expandPaths(
    "IdentityFile",
    configuredIdentities.filter((f) => f.toLowerCase() !== "none"),
    tokens,
    local,
  );
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
    needsOpenSsh:
      configOnlyOpenSshHonours(settings) ??
      (await openSshOnlyReason(identityFiles, certificateFiles, pkcs11Provider(settings), files)),
  };
}

function pkcs11Provider(settings: SshGSettings): string | null {
  const provider = first(settings, "pkcs11provider");
  return provider === undefined || provider.toLowerCase() === "none" ? null : provider;
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
  const listed = (key: string) =>
    (first(settings, key) ?? "").split(" ").filter((f) => f !== "" && f.toLowerCase() !== "none");
  return [...listed("userknownhostsfile"), ...listed("globalknownhostsfile")].map((f) =>
    resolve(local.cwd, tildeExpand(f, local.home) ?? f),
  );
}

/** Where accepted new keys go: the first UserKnownHostsFile, as ssh does; none when it is /dev/null or `none`. */
function recordHostKeysIn(settings: SshGSettings, local: LocalUser): string | null {
  const firstUserFile = (first(settings, "userknownhostsfile") ?? "").split(" ")[0] ?? "";
  if (firstUserFile === "" || firstUserFile.toLowerCase() === "none" || firstUserFile === "/dev/null") return null;
  return resolve(local.cwd, tildeExpand(firstUserFile, local.home) ?? firstUserFile);
}

// ---------------------------------------------------------------------------------------------
// Token expansion (ssh.c, sshconnect.c, misc.c percent_expand)

type Tokens = Record<string, string>;

export interface LocalUser {
  name: string;
  uid: number;
  /** From the passwd database: ssh takes `~` and %d from there, not from $HOME. */
  home: string;
  /** $HOME, which glob(3) uses for `~` in Include. */
  globHome: string;
  hostname: string;
  cwd: string;
}

export function localUser(): LocalUser {
  const info = userInfo();
  return {
    name: info.username,
    uid: info.uid,
    home: info.homedir,
    globHome: homedir(),
    hostname: localHostname(),
    cwd: process.cwd(),
  };
}

/** DEFAULT_CLIENT_PERCENT_EXPAND_ARGS: what IdentityFile, CertificateFile and UserKnownHostsFile may use. */
export function connectionTokens(
  c: { hostArg: string; hostname: string; port: number; user: string; hostKeyAlias: string | null },
  local: LocalUser,
): Tokens {
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
function expandPaths(
  keyword: string,
  paths: readonly string[],
  tokens: Tokens,
  local: LocalUser,
): string[] | RouteError {
  const expanded: string[] = [];
  for (const path of paths) {
    const tilde = tildeExpand(path, local.home);
    if (tilde === null) return new RouteError(`${keyword} ${path}: no such user for ~; write the path out`);
    const result = percentExpand(tilde, tokens, true);
    if (typeof result !== "string")
      return new RouteError(
        `${keyword} ${path}: ${result.problem}; OpenSSH would refuse it (it knows %C %d %h %i %k %L %l %n %p %r %u and \${VAR})`,
      );
    // A relative identity path is relative to ssh's working directory.
    expanded.push(resolve(local.cwd, result));
  }
  return expanded;
}

/** ProxyCommand: sshconnect.c expand_proxy_command() knows %h %k %n %p %r only, and no ${VAR}. */
function proxyCommandOf(settings: SshGSettings, tokens: Tokens): string | null | RouteError {
  const command = first(settings, "proxycommand");
  if (command === undefined || command.toLowerCase() === "none") return null;
  const result = percentExpand(
    command,
    { h: tokens.h!, k: tokens.k!, n: tokens.n!, p: tokens.p!, r: tokens.r! },
    false,
  );
  if (typeof result === "string") return result;
  return new RouteError(
    `ProxyCommand ${command}: ${result.problem}; OpenSSH would refuse it (ProxyCommand knows %h %k %n %p %r and %%)`,
  );
}

// ---------------------------------------------------------------------------------------------
// What only the OpenSSH client can do

function configOnlyOpenSshHonours(settings: SshGSettings): string | null {
  for (const key of HOST_KEY_CHECKS_ONLY_OPENSSH_DOES) {
    const value = first(settings, key);
    if (value !== undefined)
      return `ssh_config sets ${key} ${value}, a host-key check only the OpenSSH client performs`;
  }
  const agent = first(settings, "identityagent");
  if (agent !== undefined && agent !== "SSH_AUTH_SOCK" && agent !== process.env.SSH_AUTH_SOCK)
    return `ssh_config sets IdentityAgent ${agent}`;
  return null;
}

async function openSshOnlyReason(
  identityFiles: string[],
  certificateFiles: string[],
  pkcs11Provider: string | null,
  files: FileFacts,
): Promise<string | null> {
  if (pkcs11Provider !== null) return `PKCS11Provider ${pkcs11Provider} is set (keys on a PKCS#11 token)`;
  if (certificateFiles.length > 0) return `CertificateFile ${certificateFiles[0]} is set (a user certificate)`;
  for (const identity of identityFiles) {
    if (!files.exists(identity)) continue;
    // ssh loads <key>-cert.pub next to a key by itself when no CertificateFile is set.
    if (files.exists(`${identity}-cert.pub`))
      return `${identity}-cert.pub is a user certificate, which OpenSSH offers with ${identity}`;
    const type = await files.publicKeyType(`${identity}.pub`);
    if (type?.startsWith("sk-")) return `${identity} is a FIDO security key (${type})`;
  }
  return null;
}

/** File checks shared by every endpoint of a run: 10,000 hosts usually name the same few keys. */
export class FileFacts {
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
      known = readFile(path, "utf8").then(
        (text) => /^\s*(\S+)/.exec(text)?.[1] ?? null,
        () => null,
      );
      this.keyTypes.set(path, known);
    }
    return known;
  }
}

export function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
