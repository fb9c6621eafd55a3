import { isTemplate, UnsafeValue, VaultValue } from "../config/ansibleValues.js";
import type { ConfigProblem } from "../config/errors.js";
import { editDistance } from "../config/suggest.js";
import { refusedKey, validateAgainstSchema } from "../config/validate.js";
import { formatKeyPath, type KeyPath } from "../config/yamlFile.js";
import { ROLES, roleVarName } from "../roles.js";
import type { VarBlock } from "./sources/model.js";

/** A failed check may point inside the value (`at`: the bad item of a list). */
type Checked = { ok: true; value: unknown } | { ok: false; problem: string; fix: string; at?: KeyPath };

export interface UsedVar {
  /** Ansible's names for it; when several are set, the last name in this list wins (as in Ansible's ssh plugin). */
  names: readonly string[];
  description: string;
  type: string;
  check(value: unknown): Checked;
}

const ok = (value: unknown): Checked => ({ ok: true, value });
const bad = (problem: string, fix: string): Checked => ({ ok: false, problem, fix });

// Ansible's boolean(): these strings (any case) and numbers, nothing else.
const TRUE_WORDS = new Set(["y", "yes", "on", "1", "true", "t"]);
const FALSE_WORDS = new Set(["n", "no", "off", "0", "false", "f"]);

export function ansibleBoolean(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === 1 || value === 0) return value === 1;
  if (typeof value === "string") {
    const w = value.trim().toLowerCase();
    if (TRUE_WORDS.has(w)) return true;
    if (FALSE_WORDS.has(w)) return false;
  }
  return undefined;
}

function wholeNumber(min: number, max: number, fix: string) {
  return (value: unknown): Checked => {
    const n = typeof value === "string" && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof n === "number" && Number.isInteger(n) && n >= min && n <= max) return ok(n);
    return bad(`${JSON.stringify(value)} is not a whole number from ${min} to ${max}`, fix);
  };
}

const ADDRESS = /^[A-Za-z0-9.:_%-]+$/;
// Any login a directory service hands out: jdoe@corp.example.com, Administrator, first.last.
const LOGIN = /^[A-Za-z0-9_][A-Za-z0-9_.@$\\-]{0,255}$/;

/** The variables provision reads, keyed by what it uses them for. Every other var is the user's business. */
export const USED_VARS = {
  host: {
    names: ["ansible_host", "ansible_ssh_host"], type: "string", description: "Address or ssh_config alias to connect to (default: the inventory name)",
    check: (v) => (typeof v === "string" && v.length <= 253 && ADDRESS.test(v) ? ok(v) : bad(`${JSON.stringify(v)} is not a host name or IP address`, "write a host name or IP address (letters, digits and . : _ - only, at most 253 characters)")),
  },
  port: { names: ["ansible_port", "ansible_ssh_port"], type: "integer, 1–65535", description: "SSH port (default: Port in ssh_config, else 22)", check: wholeNumber(1, 65535, "use a port from 1 to 65535") },
  user: {
    names: ["ansible_user", "ansible_ssh_user"], type: "string", description: "Login user (default: User in ssh_config, else the user running provision)",
    check: (v) => (typeof v === "string" && LOGIN.test(v) ? ok(v) : bad(`${JSON.stringify(v)} is not a login name`, "write the login name, such as deploy or jdoe@corp.example.com")),
  },
  privateKeyFile: {
    names: ["ansible_private_key_file", "ansible_ssh_private_key_file"], type: "string",
    description: "Private key file, tried before IdentityFile entries of ssh_config (default: those, else ssh-agent and ~/.ssh/id_rsa, id_ecdsa, id_ed25519 … as OpenSSH tries them)",
    // A path with a newline or NUL would only fail at connect time, host by host, and forge lines where it is printed.
    check: (v) => (typeof v === "string" && v.length > 0 && v.length <= 4096 && !/[\u0000-\u001f\u007f]/.test(v) ? ok(v) : bad(`${JSON.stringify(v)} is not a file path`, "write the path of a private key file (no control characters such as newlines, at most 4096 characters)")),
  },
  become: {
    names: ["ansible_become"], type: "boolean", description: "Run privileged steps with sudo (overrides the play's become)",
    check: (v) => {
      const b = ansibleBoolean(v);
      return b === undefined ? bad(`${JSON.stringify(v)} is not a boolean`, "write true or false (yes/no, on/off and 1/0 work too, as in Ansible)") : ok(b);
    },
  },
  becomeUser: {
    names: ["ansible_become_user"], type: "string", description: "User privileged steps run as: only root, since they write /etc and /proc/sys",
    check: (v) => (typeof v === "string" && LOGIN.test(v) ? ok(v) : bad(`${JSON.stringify(v)} is not a user name`, "write root")),
  },
  becomeMethod: {
    names: ["ansible_become_method"], type: "string", description: "How to become root: sudo (su and doas are refused, per host)",
    check: (v) => (typeof v === "string" && /^[a-z0-9_.]+$/.test(v) ? ok(v) : bad(`${JSON.stringify(v)} is not a become method`, "write sudo")),
  },
  connection: {
    names: ["ansible_connection"], type: "string", description: "ssh (also smart, paramiko), or local: the machine provision runs on, without SSH (become through sudo -n unless provision runs as root); other types are refused on the hosts that have them",
    check: (v) => (typeof v === "string" && /^[a-z0-9_.]+$/.test(v) ? ok(v) : bad(`${JSON.stringify(v)} is not a connection type`, "write ssh or local")),
  },
  sshCommonArgs: { names: ["ansible_ssh_common_args"], type: "string", description: "Extra ssh options, split as Ansible splits them: -o Key=Value, -J (ProxyJump), -i, -l, -p, -F; options only the OpenSSH client honours send the host through it; forwarding and terminal flags are refused", check: (v) => (typeof v === "string" ? ok(v) : bad(`${JSON.stringify(v)} is not text`, "write the ssh options as one string")) },
  sshExtraArgs: { names: ["ansible_ssh_extra_args"], type: "string", description: "Extra ssh options, split as Ansible splits them: -o Key=Value, -J (ProxyJump), -i, -l, -p, -F; options only the OpenSSH client honours send the host through it; forwarding and terminal flags are refused", check: (v) => (typeof v === "string" ? ok(v) : bad(`${JSON.stringify(v)} is not text`, "write the ssh options as one string")) },
  memTotalMb: {
    names: ["ansible_memtotal_mb"], type: "integer, ≥ 64",
    description: "The host's memory in MiB, as Ansible's fact of that name; lets `provision lint` check memory-bound settings without connecting",
    check: wholeNumber(64, Number.MAX_SAFE_INTEGER, "write the host's MemTotal in MiB, e.g. 16384"),
  },
  listenPorts: {
    names: ["listen_ports"], type: "list of ports",
    description: "Ports this host's services listen on (even when not running yet); `provision lint` checks them against the ephemeral port range",
    check: (v) => {
      const fix = "write a list of port numbers, e.g. [8080, 9090]";
      if (!Array.isArray(v)) return bad(`${JSON.stringify(v)} is not a list of ports`, fix);
      const ports = v.map((p) => wholeNumber(1, 65535, "")(p));
      const badIndex = ports.findIndex((p) => !p.ok);
      if (badIndex >= 0) return { ...bad(`${JSON.stringify(v[badIndex])} is not a port`, fix), at: [badIndex] };
      return ok([...new Set(ports.map((p) => (p as { value: number }).value))]);
    },
  },
} satisfies Record<string, UsedVar>;

export type UsedVarKey = keyof typeof USED_VARS;

const USED_NAMES = new Map<string, UsedVarKey>(Object.entries(USED_VARS).flatMap(([key, v]) => v.names.map((n) => [n, key as UsedVarKey] as const)));
const ROLE_VARS = new Map(ROLES.map((r) => [roleVarName(r.name), r]));

// Real vars of other tools a letter away from ours: keepalived's role, an app's listen_port.
const OTHER_PROJECTS = new Set(["keepalived"]);

const SECRET_NAMES = ["ansible_password", "ansible_ssh_pass", "ansible_ssh_password", "ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password"];

/** Names whose values are never printed: Ansible's password vars and anything named like a secret. */
export function isSecretName(name: string): boolean {
  return SECRET_NAMES.includes(name) || /(^|_)(pass|passwd|password|secret|token|api_key|private_key)$/i.test(name);
}

/**
 * Checks the vars provision uses in one mapping, at their own lines: connection values, role
 * blocks (closed schemas: unknown keys are errors), templates and vault values where provision
 * would have to read them, near-misses of provision's names. Other vars are not looked at.
 */
export function checkVarBlock(block: VarBlock, problems: ConfigProblem[]): void {
  const at = (key: string, rest: KeyPath = [], where: "key" | "value" = "value") => {
    const path = [...block.basePath, key, ...rest];
    return { file: block.source.file, ...block.source.locate(path, where), keyPath: formatKeyPath(path) };
  };
  for (const [name, raw] of Object.entries(block.vars)) {
    const refused = refusedKey(name);
    if (refused) {
      problems.push({ ...at(name, [], "key"), severity: "error", ...refused });
      continue;
    }
    const used = USED_NAMES.get(name);
    const role = ROLE_VARS.get(name);
    if (!used && !role) {
      nearMiss(name, problems, at);
      if (SECRET_NAMES.includes(name) && typeof raw === "string" && !isTemplate(raw)) {
        problems.push({
          ...at(name, [], "key"), severity: "warning",
          problem: `${name} is written here in plain text; provision never reads passwords from inventories`,
          fix: "vault-encrypt it for Ansible (ansible-vault encrypt_string); give provision the sudo password with -K or PROVISION_BECOME_PASSWORD",
        });
      }
      continue;
    }
    const unreadable = unreadableValue(raw, []);
    if (unreadable) {
      problems.push({ ...at(name, unreadable.path), severity: "error", problem: `${name}${unreadable.path.length ? formatSuffix(unreadable.path) : ""} ${unreadable.problem}`, fix: unreadable.fix });
      continue;
    }
    const value = plain(raw);
    if (used) {
      const result = USED_VARS[used].check(value);
      if (!result.ok) problems.push({ ...at(name, result.at ?? []), severity: "error", problem: result.problem, fix: result.fix });
    } else if (role && value !== null && value !== undefined) {
      validateAgainstSchema(role.schema, value, block.source, [...block.basePath, name], problems);
    }
  }
}

/** The value provision uses: `!unsafe` text is plain text to a reader that never templates. */
export function plain(value: unknown): unknown {
  if (value instanceof UnsafeValue) return value.text;
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object" && !(value instanceof VaultValue)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function unreadableValue(value: unknown, path: KeyPath): { path: KeyPath; problem: string; fix: string } | null {
  if (value instanceof VaultValue) {
    return {
      path, problem: "is vault-encrypted, and provision never decrypts vault",
      fix: "write this value in plain text (it is not a secret: passwords are never read from inventories); keep it vaulted for Ansible in a var provision doesn't read",
    };
  }
  if (isTemplate(value)) {
    return {
      path, problem: `is a Jinja template (${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)}), and provision does not evaluate templates`,
      fix: "write the value itself here, or for provision only in a file of its own (host_vars/ or a group provision reads); ansible -m debug -a var=NAME HOST shows what Ansible renders it to",
    };
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unreadableValue(value[i], [...path, i]);
      if (found) return found;
    }
  } else if (value !== null && typeof value === "object" && !(value instanceof UnsafeValue)) {
    for (const [k, v] of Object.entries(value)) {
      const found = unreadableValue(v, [...path, k]);
      if (found) return found;
    }
  }
  return null;
}

function formatSuffix(path: KeyPath): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("");
}

const nearMisses = new Map<string, string | undefined>();

function nearMiss(name: string, problems: ConfigProblem[], at: (key: string, rest?: KeyPath, where?: "key" | "value") => { file: string; line: number; col: number; keyPath: string }): void {
  if (!nearMisses.has(name)) nearMisses.set(name, closestProvisionName(name));
  const best = nearMisses.get(name);
  if (best === undefined) return;
  problems.push({
    ...at(name, [], "key"), severity: "warning",
    problem: `${JSON.stringify(name)} is not a var provision reads, so it has no effect`,
    fix: `did you mean "${best}"?`,
  });
}

/** The provision name `name` is most likely a slip for, if any. Pure; memoized by the caller. */
function closestProvisionName(name: string): string | undefined {
  const lower = name.toLowerCase().replace(/-/g, "_");
  // Ansible has many ansible_* vars a letter or two from ours; only a one-letter slip there is likely ours.
  const candidates = name.startsWith("ansible_") ? [...USED_NAMES.keys()].filter((n) => n.startsWith("ansible_")) : [...ROLE_VARS.keys(), ...USED_NAMES.keys()];
  const limit = name.startsWith("ansible_") || name.length < 8 ? 1 : 2;
  if (OTHER_PROJECTS.has(lower)) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = lower === c ? 0 : editDistance(lower, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best === undefined || bestDistance > limit ? undefined : best;
}
