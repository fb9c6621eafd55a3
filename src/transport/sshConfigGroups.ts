import { SocketAddress } from "node:net";
import { resolve } from "node:path";
import { RouteError, type RouteRequest } from "./route.js";
import { hostLineMatcher, parseJumpList, scanSshConfig, type ConfigScope } from "./sshConfigFiles.js";
import { sameList, type LocalUser } from "./sshEndpoint.js";
import {
  configFileOf,
  destinationProblem,
  directivesOf,
  first,
  type SshG,
  type SshGResult,
  type SshGSettings,
} from "./sshG.js";

// ---------------------------------------------------------------------------------------------
// Targets: per destination, or shared by destinations matching the same Host lines

export async function resolveTargets(
  requests: RouteRequest[],
  argvs: string[][],
  sshG: SshG,
  local: LocalUser,
  strategy: "hybrid" | "per-host",
): Promise<SshGResult[]> {
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
  if (/^[0-9][0-9a-fA-FxX.]*$/.test(name))
    return /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(name);
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
export function nameKind(name: string): "address" | "lower" | "mixed" {
  if (name.includes(":") || /^[0-9.]+$/.test(name)) return "address";
  return name === name.toLowerCase() ? "lower" : "mixed";
}

/** `-o CanonicalizeHostname=yes` makes ssh re-read the config for the canonical name (and ask DNS). */
function needsOwnResolution(argv: string[]): boolean {
  return directivesOf(argv).some(
    (d) => d.keyword === "canonicalizehostname" && !["no", "false"].includes(d.args[0]?.toLowerCase() ?? ""),
  );
}

/** Scans of the config files per -F selection, and whether ssh confirmed it reads exactly those files. */
class ConfigScopes {
  private readonly scopes = new Map<string, { scope: ConfigScope; matcher: (name: string) => number[] }>();
  private readonly verifications = new Map<string, Promise<boolean>>();

  constructor(
    private readonly sshG: SshG,
    private readonly local: LocalUser,
  ) {}

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
        scope.rejected !== null
          ? Promise.resolve(false)
          : this.sshG.filesRead(configFile).then(
              (read) =>
                read !== null &&
                sameList(
                  read.map((f) => resolve(f)),
                  expected,
                ),
            );
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
async function resolveGroup(
  members: GroupMember[],
  argv: string[],
  sshG: SshG,
  templatesTrusted: () => Promise<boolean>,
): Promise<SshGResult[]> {
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

async function sharedForm(
  candidates: string[],
  resolveAlone: (name: string) => Promise<SshGResult>,
  probed: Map<string, SshGResult>,
): Promise<NamelessForm | null> {
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
  if (a instanceof RouteError || b instanceof RouteError)
    return a instanceof RouteError && b instanceof RouteError && a.message === b.message;
  return a.size === b.size && [...a].every(([key, values]) => sameList(values, b.get(key) ?? []));
}

async function fromSharedForm(
  form: NamelessForm | null,
  name: string,
  resolveAlone: (name: string) => Promise<SshGResult>,
): Promise<SshGResult> {
  if (form === null) return resolveAlone(name);
  if (form instanceof RouteError) return new RouteError(withName(form.message, name));
  const settings = new Map(
    [...form].map(([key, values]) => [key, values.some(hasName) ? values.map((v) => withName(v, name)) : values]),
  );
  // ssh refuses a ProxyJump whose last hop is the host itself ("jumphost loop"); let it say so.
  return lastJumpIsHostItself(settings) ? resolveAlone(name) : settings;
}

function lastJumpIsHostItself(settings: SshGSettings): boolean {
  const jumps = first(settings, "proxyjump");
  if (jumps === undefined || jumps === "none") return false;
  const last = parseJumpList(jumps);
  return typeof last === "string" || last.at(-1)?.host === first(settings, "hostname");
}
