import { readdirSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { isAbsolute, join, resolve } from "node:path";

/**
 * OpenSSH's config syntax, as far as sshConfig.ts needs it without running ssh: which files ssh
 * reads and which `Host` lines a name matches (the grouping key of the hybrid resolution), the
 * ProxyJump entry grammar, and the %-token and ~ expansion ssh applies to values it prints
 * unexpanded. Settings themselves are left to `ssh -G`. Follows OpenSSH 9.2 (readconf.c, misc.c):
 * keywords are case-insensitive, values are split like argv_split() (quotes, backslash escapes,
 * `#` comments), Host patterns are whitespace-separated and matched case-sensitively against the
 * name as typed.
 */

export interface HostPattern {
  pattern: string;
  negated: boolean;
}

/** One `Host` line (or `Match all`, which matches every name). */
export interface HostLine {
  file: string;
  line: number;
  patterns: HostPattern[];
}

export interface ConfigScope {
  /** The files ssh reads, in its order: the -F file or ~/.ssh/config and /etc/ssh/ssh_config, each followed by its Includes where they appear. */
  files: string[];
  /** Every Host line of those files, in reading order (also those in Includes read from blocks that don't apply: ssh reads them too). */
  hostLines: HostLine[];
  /** Why the Host lines alone can't tell which settings apply to a name (Match, CanonicalizeHostname…); null when they can. */
  unscopable: string | null;
  /** A line or file ssh itself refuses (so it fails alike for every name), which the scan could not follow; null when none. */
  rejected: string | null;
}

export interface ConfigLocations {
  /** The -F value (last one wins), or undefined for the default files. */
  configFile: string | undefined;
  /** The passwd home directory: where ssh looks for ~/.ssh/config. */
  passwdHome: string;
  /** $HOME: glob(3) expands `~` in Include paths from it. */
  globHome: string;
  /** /etc/ssh, where OpenSSH (as packaged) keeps ssh_config; relative Includes of the system file resolve there. */
  systemDir?: string;
}

/** readconf.c READCONF_MAX_DEPTH. */
const MAX_INCLUDE_DEPTH = 16;

export class ConfigSyntaxError extends Error {}

/** Which files ssh reads and which Host lines they hold. Never throws for a bad file: that is reported in the scope. */
export function scanSshConfig(locations: ConfigLocations): ConfigScope {
  const scan = new ConfigScan(locations);
  if (locations.configFile === undefined) {
    scan.readTopLevel(join(locations.passwdHome, ".ssh", "config"), true);
    scan.readTopLevel(join(locations.systemDir ?? "/etc/ssh", "ssh_config"), false);
  } else if (locations.configFile.toLowerCase() !== "none") {
    scan.readTopLevel(locations.configFile, true);
  }
  return { files: scan.files, hostLines: scan.hostLines, unscopable: scan.unscopable, rejected: scan.rejected };
}

class ConfigScan {
  readonly files: string[] = [];
  readonly hostLines: HostLine[] = [];
  unscopable: string | null = null;
  rejected: string | null = null;

  constructor(private readonly locations: ConfigLocations) {}

  /** ssh skips a default file it cannot open and fails on a -F file it cannot open (which `ssh -G` then reports). */
  readTopLevel(file: string, userConfig: boolean): void {
    try {
      this.readFile(file, readFileSync(file, "utf8"), userConfig, 0);
    } catch (err) {
      if (!isFileSystemError(err)) throw err;
    }
  }

  private readFile(file: string, text: string, userConfig: boolean, depth: number): void {
    this.files.push(file);
    text.split("\n").forEach((raw, i) => {
      try {
        const directive = parseConfigLine(raw, file, i + 1);
        if (directive !== null)
          this.apply(directive, `${file} line ${i + 1}`, { file, line: i + 1 }, userConfig, depth);
      } catch (err) {
        if (!(err instanceof ConfigSyntaxError)) throw err;
        this.rejected ??= err.message;
      }
    });
  }

  private apply(
    directive: ConfigDirective,
    where: string,
    at: { file: string; line: number },
    userConfig: boolean,
    depth: number,
  ): void {
    switch (directive.keyword) {
      case "host":
        this.hostLines.push({ ...at, patterns: directive.args.map(hostPattern) });
        return;
      case "match":
        if (directive.args.length === 1 && directive.args[0]!.toLowerCase() === "all")
          this.hostLines.push({ ...at, patterns: [{ pattern: "*", negated: false }] });
        else this.unscopable ??= `${where}: Match ${directive.args.join(" ")}`;
        return;
      case "canonicalizehostname":
        if (!["no", "false"].includes(directive.args[0]?.toLowerCase() ?? ""))
          this.unscopable ??= `${where}: CanonicalizeHostname ${directive.args.join(" ")}`;
        return;
      case "include":
        for (const arg of directive.args) this.include(arg, where, userConfig, depth);
        return;
    }
  }

  /** readconf.c: relative paths live in ~/.ssh (user files, -F included) or /etc/ssh; each match is read where the Include stands. */
  private include(arg: string, where: string, userConfig: boolean, depth: number): void {
    if (depth + 1 > MAX_INCLUDE_DEPTH)
      throw new ConfigSyntaxError(`${where}: Include nested more than ${MAX_INCLUDE_DEPTH} deep`);
    if (arg.startsWith("~") && !userConfig) throw new ConfigSyntaxError(`${where}: bad include path ${arg}`);
    if (/^~[^/]/.test(arg)) {
      this.unscopable ??= `${where}: Include ${arg} names another user's home directory`;
      return;
    }
    const anchored =
      isAbsolute(arg) || arg.startsWith("~")
        ? arg
        : userConfig
          ? `~/.ssh/${arg}`
          : join(this.locations.systemDir ?? "/etc/ssh", arg);
    // glob(3) with GLOB_TILDE takes ~ from $HOME.
    const pattern = anchored.startsWith("~") ? this.locations.globHome + anchored.slice(1) : anchored;
    for (const file of globPaths(pattern)) {
      const text = readIncluded(file, where);
      if (text !== null) this.readFile(file, text, userConfig, depth + 1);
    }
  }
}

function isFileSystemError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string";
}

interface ConfigDirective {
  /** Lower-cased. */
  keyword: string;
  args: string[];
}

/** One line as process_config_line() sees it: keyword (split at whitespace or one `=`) and argv_split() arguments; null for blank and comment lines. */
export function parseConfigLine(raw: string, file: string, line: number): ConfigDirective | null {
  const text = raw.replace(/[ \t\r\n\f]+$/, "").replace(/^[ \t\r\n]+/, "");
  if (text === "" || text.startsWith("#")) return null;
  const keyword = /^[^ \t\r\n"=]+/.exec(text)?.[0];
  if (keyword === undefined) throw new ConfigSyntaxError(`${file} line ${line}: cannot read the keyword`);
  const rest = text.slice(keyword.length).replace(/^[ \t\r\n]*=?[ \t\r\n]*/, "");
  return { keyword: keyword.toLowerCase(), args: splitConfigArgs(rest, `${file} line ${line}`) };
}

/** misc.c argv_split(…, terminate_on_comment=1): quotes group, `\` escapes quotes, `\` and (unquoted) space. */
export function splitConfigArgs(text: string, where: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === " " || text[i] === "\t") {
      i++;
      continue;
    }
    if (text[i] === "#") break;
    let arg = "";
    let quote: string | null = null;
    for (; i < text.length; i++) {
      const c = text[i]!;
      const next = text[i + 1];
      if (
        c === "\\" &&
        next !== undefined &&
        (next === "'" || next === '"' || next === "\\" || (quote === null && next === " "))
      ) {
        arg += next;
        i++;
      } else if (quote === null && (c === " " || c === "\t")) {
        break;
      } else if (quote === null && (c === '"' || c === "'")) {
        quote = c;
      } else if (quote !== null && c === quote) {
        quote = null;
      } else {
        arg += c;
      }
    }
    if (quote !== null) throw new ConfigSyntaxError(`${where}: invalid quotes`);
    args.push(arg);
  }
  return args;
}

function hostPattern(arg: string): HostPattern {
  return arg.startsWith("!") ? { pattern: arg.slice(1), negated: true } : { pattern: arg, negated: false };
}

/** readconf.c oHost: applies when some pattern matches and no negated one does. */
export function hostLineMatches(line: HostLine, name: string): boolean {
  let matched = false;
  for (const { pattern, negated } of line.patterns) {
    if (!matchPattern(name, pattern)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/**
 * Which Host lines a name matches, as line indexes in reading order. Literal patterns are looked up
 * instead of tried one by one: a generated config with a Host block per machine has thousands.
 */
export function hostLineMatcher(lines: readonly HostLine[]): (name: string) => number[] {
  const literal = new Map<string, number[]>();
  const wildcard: Array<{ index: number; pattern: string }> = [];
  lines.forEach((line, index) => {
    for (const { pattern, negated } of line.patterns) {
      if (negated) continue;
      if (/[*?]/.test(pattern)) wildcard.push({ index, pattern });
      else if (literal.has(pattern)) literal.get(pattern)!.push(index);
      else literal.set(pattern, [index]);
    }
  });
  return (name) => {
    const candidates = new Set(literal.get(name));
    for (const { index, pattern } of wildcard) if (matchPattern(name, pattern)) candidates.add(index);
    return [...candidates].filter((index) => hostLineMatches(lines[index]!, name)).sort((a, b) => a - b);
  };
}

/** match.c match_pattern(): `*` and `?` wildcards, every other character compared exactly (so case-sensitive). */
export function matchPattern(s: string, pattern: string): boolean {
  let si = 0;
  let pi = 0;
  let starPi = -1;
  let starSi = 0;
  while (si < s.length) {
    if (pi < pattern.length && (pattern[pi] === "?" || pattern[pi] === s[si])) {
      si++;
      pi++;
    } else if (pi < pattern.length && pattern[pi] === "*") {
      starPi = pi++;
      starSi = si;
    } else if (starPi !== -1) {
      pi = starPi + 1;
      si = ++starSi;
    } else {
      return false;
    }
  }
  while (pattern[pi] === "*") pi++;
  return pi === pattern.length;
}

/** An Included file ssh would open: a directory reads as empty, a vanished file is skipped, anything else unreadable is ssh's error. */
function readIncluded(file: string, where: string): string | null {
  try {
    if (statSync(file).isDirectory()) return "";
    return readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ConfigSyntaxError(`${where}: cannot read included file ${file}: ${(err as Error).message}`);
  }
}

/** glob(3) without flags, for an absolute pattern: `*`, `?`, `[…]` per path component, dot files only matched explicitly, sorted bytewise. */
export function globPaths(pattern: string): string[] {
  if (!/[*?[]/.test(pattern)) return [pattern];
  let paths = ["/"];
  for (const component of resolve(pattern).split("/")) {
    if (component !== "") paths = paths.flatMap((base) => expandComponent(base, component));
  }
  return paths.sort(compareBytes);
}

function expandComponent(base: string, component: string): string[] {
  if (!/[*?[]/.test(component)) return [join(base, component)];
  const matcher = globComponentRegExp(component);
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => (!entry.startsWith(".") || component.startsWith(".")) && matcher.test(entry))
    .map((entry) => join(base, entry));
}

function globComponentRegExp(component: string): RegExp {
  let source = "";
  for (let i = 0; i < component.length; i++) {
    const c = component[i]!;
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "[") {
      const close = component.indexOf("]", i + 2);
      if (close === -1) {
        source += "\\[";
        continue;
      }
      const body = component.slice(i + 1, close);
      source += `[${body.startsWith("!") ? "^" + escapeClass(body.slice(1)) : escapeClass(body)}]`;
      i = close;
    } else source += c.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "s");
}

function escapeClass(body: string): string {
  return body.replace(/[\\\]^]/g, "\\$&");
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// ProxyJump entries

export interface JumpEntry {
  /** As written in the ProxyJump list (passed on in `-J`). */
  text: string;
  user: string | undefined;
  host: string;
  /** As written; ssh also accepts service names. */
  port: string | undefined;
}

/** readconf.c parse_jump(): a comma list of `[user@]host[:port]`, `[user@][addr]:port` or `ssh://[user@]host[:port]`; an error string otherwise. */
export function parseJumpList(value: string): JumpEntry[] | string {
  const entries: JumpEntry[] = [];
  for (const text of value.split(",")) {
    const entry = text.startsWith("ssh://") ? parseJumpUri(text) : parseUserHostPort(text);
    if (entry === null) return `cannot read the ProxyJump entry ${JSON.stringify(text)}`;
    if (entry.host.startsWith("-"))
      return `the ProxyJump host ${JSON.stringify(entry.host)} starts with "-", which ssh would read as an option`;
    entries.push(entry);
  }
  return entries;
}

function parseUserHostPort(text: string): JumpEntry | null {
  const at = text.lastIndexOf("@");
  if (at === 0) return null;
  const address = splitHostPort(at === -1 ? text : text.slice(at + 1));
  if (address === null || address.delimiter === "/") return null;
  return {
    text,
    user: at === -1 ? undefined : text.slice(0, at),
    host: address.host,
    port: emptyToUndefined(address.rest),
  };
}

/** misc.c parse_uri("ssh", …): user info up to the first `@` (`;params` dropped, %-decoded), no path. */
function parseJumpUri(text: string): JumpEntry | null {
  const rest = text.slice("ssh://".length);
  const at = rest.indexOf("@");
  const user = at === -1 ? undefined : uriDecode(rest.slice(0, at).split(";")[0]!);
  if (user === "" || user === null) return null;
  const address = splitHostPort(at === -1 ? rest : rest.slice(at + 1));
  if (address === null) return null;
  const [port, path] = address.delimiter === ":" ? splitOnce(address.rest ?? "", "/") : [undefined, address.rest];
  if (path !== undefined && path !== "") return null;
  return { text, user, host: address.host, port: emptyToUndefined(port) };
}

/** misc.c hpdelim2(): `[addr]` or the text up to the first `:` or `/`, and what follows that delimiter. */
function splitHostPort(text: string): { host: string; delimiter: string | undefined; rest: string | undefined } | null {
  const end = hostEnd(text);
  const delimiter = text[end];
  if (end === -1 || (delimiter !== undefined && delimiter !== ":" && delimiter !== "/")) return null;
  const host = text.startsWith("[") ? text.slice(1, end - 1) : text.slice(0, end);
  if (host === "") return null;
  return { host, delimiter, rest: delimiter === undefined ? undefined : text.slice(end + 1) };
}

/** Index just past the host part of `host[:…]` or `[addr][:…]`; -1 for an unclosed bracket. */
function hostEnd(text: string): number {
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    return close === -1 ? -1 : close + 1;
  }
  const delimiter = text.search(/[:/]/);
  return delimiter === -1 ? text.length : delimiter;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === "" ? undefined : value;
}

function uriDecode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Expansion of values

/** misc.c vdollar_percent_expand(). */
export function percentExpand(
  text: string,
  tokens: Record<string, string>,
  dollar: boolean,
): string | { problem: string } {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (dollar && c === "$" && text[i + 1] === "{") {
      const end = text.indexOf("}", i + 2);
      if (end === -1) return { problem: "${ without closing }" };
      const name = text.slice(i + 2, end);
      const value = process.env[name];
      if (name === "" || value === undefined) return { problem: `environment variable \${${name}} is not set` };
      out += value;
      i = end;
    } else if (c !== "%") {
      out += c;
    } else if (text[i + 1] === "%") {
      out += "%";
      i++;
    } else {
      const token = text[i + 1];
      if (token === undefined) return { problem: "a lone % at the end" };
      const value = tokens[token];
      if (value === undefined) return { problem: `unknown token %${token}` };
      out += value;
      i++;
    }
  }
  return out;
}

/** misc.c tilde_expand(): `~` and `~/` from `home` (ssh uses the passwd entry's), `~user/` from that user's; null for an unknown user. */
export function tildeExpand(path: string, home: string): string | null {
  if (!path.startsWith("~")) return path;
  const slash = path.indexOf("/");
  const userName = path.slice(1, slash === -1 ? undefined : slash);
  const userHome = userName === "" ? home : passwdHome(userName);
  if (userHome === null) return null;
  const rest = slash === -1 ? "" : path.slice(slash + 1).replace(/^\/+/, "");
  return userHome.endsWith("/") ? userHome + rest : `${userHome}/${rest}`;
}

function passwdHome(userName: string): string | null {
  if (userName === userInfo().username) return userInfo().homedir;
  try {
    const entry = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .map((l) => l.split(":"))
      .find((f) => f[0] === userName);
    return entry?.[5] ?? null;
  } catch {
    return null;
  }
}

/** One word of an ssh_config value or `-o` argument, as ssh splits it (quotes, backslash escapes). */
export function configQuote(value: string): string {
  return value === "" || /[\s"'\\#]/.test(value) ? `"${value.replace(/[\\"']/g, "\\$&")}"` : value;
}
