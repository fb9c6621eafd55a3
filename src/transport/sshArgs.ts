import { shlexSplit, ShlexError } from "../inventory/sources/shlex.js";

/**
 * ansible_ssh_common_args / ansible_ssh_extra_args, as Ansible's ssh plugin reads them
 * (`shlex.split`), checked for what provision can honour. The options go to `ssh -G` with the
 * host's destination, so whatever they change in the resolved connection (ProxyJump, User, Port,
 * IdentityFile, known_hosts files, timeouts) is honoured by both transports; options that change
 * how OpenSSH itself talks (ciphers, GSSAPI, SetEnv…) are honoured only by the OpenSSH client, so
 * a host that sets them is reached through it.
 */

export type SshArgsCheck =
  { ok: true; args: string[]; openSshOnly: string[] } | { ok: false; problem: string; fix: string };

/** Keys the resolved endpoint carries (sshEndpoint.ts reads them from `ssh -G`): honoured on every path. */
const RESOLVED_KEYS = [
  "hostname",
  "user",
  "port",
  "identityfile",
  "identitiesonly",
  "certificatefile",
  "proxyjump",
  "proxycommand",
  "userknownhostsfile",
  "globalknownhostsfile",
  "stricthostkeychecking",
  "connecttimeout",
  "serveraliveinterval",
  "serveralivecountmax",
  "hostkeyalias",
];

/** Keys that change nothing provision does: it manages its own connections, logs and prompts. */
const IGNORABLE_KEYS = [
  "controlmaster",
  "controlpersist",
  "controlpath",
  "compression",
  "loglevel",
  "batchmode",
  "hashknownhosts",
  "updatehostkeys",
  "checkhostip",
  "visualhostkey",
  "forwardx11",
  "forwardx11trusted",
  "forwardagent",
  "addkeystoagent",
  "passwordauthentication",
  "kbdinteractiveauthentication",
  "challengeresponseauthentication",
  "preferredauthentications",
  "sendenv",
  "requesttty",
  "exitonforwardfailure",
  "tcpkeepalive",
  "numberofpasswordprompts",
  "pubkeyauthentication",
  "verifyhostkeydns",
];

/** Flags that take a value, and how each maps to `-o` (undefined: passed as it is). */
const FLAGS_WITH_VALUE: Record<string, string | undefined> = {
  o: undefined,
  J: "ProxyJump",
  i: "IdentityFile",
  l: "User",
  p: "Port",
  F: undefined,
  c: "Ciphers",
  m: "MACs",
};
/** Flags without a value that are harmless here. */
const HARMLESS_FLAGS = new Set(["C", "4", "6", "q", "A", "a", "x", "T", "n"]);

export function checkSshArgs(text: string): SshArgsCheck {
  let words: string[];
  try {
    words = shlexSplit(text);
  } catch (err) {
    if (!(err instanceof ShlexError)) throw err;
    return {
      ok: false,
      problem: `the ssh options cannot be split as Ansible splits them: ${err.reason} (at character ${err.offset + 1})`,
      fix: "close the quote or remove the trailing backslash",
    };
  }
  const args: string[] = [];
  const openSshOnly: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const flag = /^-([A-Za-z0-9])(.*)$/s.exec(word);
    if (!flag)
      return {
        ok: false,
        problem: `${JSON.stringify(word)} is not an ssh option (a destination or a remote command does not belong here)`,
        fix: "keep only options such as -o ProxyJump=bastion or -J bastion",
      };
    const [, letter, attached] = flag as unknown as [string, string, string];
    if (HARMLESS_FLAGS.has(letter) && attached === "") continue;
    if (!(letter in FLAGS_WITH_VALUE)) {
      return {
        ok: false,
        problem: `ssh flag -${letter} is not supported (${JSON.stringify(word)}): provision opens only its own sessions, without forwarding, tunnels or terminals`,
        fix: "remove it for the hosts provision tunes; ProxyJump (-J), -o options, -i, -l, -p and -F are supported",
      };
    }
    const value = attached !== "" ? attached : words[++i];
    if (value === undefined)
      return { ok: false, problem: `ssh flag -${letter} has no value`, fix: `write -${letter} VALUE` };
    if (letter === "F") {
      args.push("-F", value);
      continue;
    }
    const option = letter === "o" ? value : `${FLAGS_WITH_VALUE[letter]}=${value}`;
    const key = /^\s*([A-Za-z0-9]+)\s*(?:=|\s)/.exec(option)?.[1];
    if (!key)
      return {
        ok: false,
        problem: `${JSON.stringify(option)} is not an ssh option (expected Key=Value)`,
        fix: "write -o Key=Value, e.g. -o ProxyJump=bastion.example.com",
      };
    const lower = key.toLowerCase();
    if (!RESOLVED_KEYS.includes(lower) && !IGNORABLE_KEYS.includes(lower)) openSshOnly.push(key);
    args.push("-o", option);
  }
  return { ok: true, args, openSshOnly: [...new Set(openSshOnly)] };
}
