import { randomBytes } from "node:crypto";
import { chownSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { publicKeyWithoutComment } from "../hostfs.js";
import { runChecked } from "../shell.js";

// A host's disk: its own copy-on-write view of the cached rootfs (an overlay whose upper dir holds everything the host
// ever writes), made distinct at creation the way an installer would: host keys, machine-id, hostname, a static
// systemd-networkd address and the fleet's client key. It outlives reboots of the host; only teardown removes it.

export interface HostImageSpec {
  name: string;
  /** e.g. "198.18.4.2/24"; systemd-networkd configures it at every boot. */
  addressWithPrefix: string;
  rootfsDir: string;
  hostDir: string;
  clientPublicKey: string;
}

export interface HostImage {
  /** The merged root the container boots from. */
  rootDir: string;
  /** "ssh-ed25519 AAAA…", one per host key type, for known_hosts. */
  hostPublicKeys: string[];
}

/** nspawn's name for the container end of a --network-bridge veth. */
export const CONTAINER_INTERFACE = "host0";
const NETWORK_FILE = "etc/systemd/network/10-provision-fleet.network";
const LOGIN_USERS = ["root", "deploy"] as const;

export async function createHostImage(spec: HostImageSpec): Promise<HostImage> {
  const rootDir = await mountOverlay(spec.rootfsDir, spec.hostDir);
  writeIdentity(rootDir, spec.name);
  replaceFile(join(rootDir, NETWORK_FILE), networkFile(spec.addressWithPrefix), 0o644);
  for (const user of LOGIN_USERS) authorize(rootDir, user, spec.clientPublicKey);
  // Like Debian's first boot would: every host key type sshd loads by default, made for this host alone.
  await runChecked("ssh-keygen", ["-A", "-f", rootDir]);
  return { rootDir, hostPublicKeys: hostPublicKeys(rootDir) };
}

async function mountOverlay(rootfsDir: string, hostDir: string): Promise<string> {
  const [upper, work, root] = ["upper", "work", "root"].map((name) => join(hostDir, name)) as [string, string, string];
  for (const dir of [upper, work, root]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  // The option string has no quoting: a comma or colon in a path would silently change its meaning.
  for (const path of [rootfsDir, upper, work]) {
    if (/[,:\\]/.test(path)) throw new Error(`overlay path ${path} must not contain ',', ':' or '\\'`);
  }
  await runChecked("mount", [
    "-t",
    "overlay",
    "-o",
    `lowerdir=${rootfsDir},upperdir=${upper},workdir=${work}`,
    "provision-fleet-host",
    root,
  ]);
  return root;
}

function writeIdentity(rootDir: string, name: string): void {
  replaceFile(join(rootDir, "etc/hostname"), `${name}\n`, 0o644);
  // Without its own name resolvable, sudo prints "unable to resolve host" on stderr.
  replaceFile(
    join(rootDir, "etc/hosts"),
    `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    0o644,
  );
  // Facts gathering may identify hosts by machine-id, and the journal files are named after it.
  replaceFile(join(rootDir, "etc/machine-id"), `${randomBytes(16).toString("hex")}\n`, 0o444);
}

/** Static address, no gateway: a fleet host reaches its /24 and nothing else. */
function networkFile(addressWithPrefix: string): string {
  return [
    "# Written by the provision test fleet when this host was created.",
    "[Match]",
    `Name=${CONTAINER_INTERFACE}`,
    "",
    "[Network]",
    `Address=${addressWithPrefix}`,
    "LinkLocalAddressing=no",
    "IPv6AcceptRA=no",
    "",
  ].join("\n");
}

function authorize(rootDir: string, user: (typeof LOGIN_USERS)[number], clientPublicKey: string): void {
  const { uid, gid, home } = passwdEntry(rootDir, user);
  const sshDir = join(rootDir, home, ".ssh");
  const file = join(sshDir, "authorized_keys");
  replaceFile(file, `${clientPublicKey.trim()}\n`, 0o600);
  chownSync(file, uid, gid);
}

function passwdEntry(rootDir: string, user: string): { uid: number; gid: number; home: string } {
  const line = readFileSync(join(rootDir, "etc/passwd"), "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${user}:`));
  const fields = line?.split(":");
  if (!fields || fields.length < 7) throw new Error(`the fleet rootfs has no user ${user} in /etc/passwd`);
  return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]! };
}

function hostPublicKeys(rootDir: string): string[] {
  const sshDir = join(rootDir, "etc/ssh");
  return readdirSync(sshDir)
    .filter((name) => /^ssh_host_\w+_key\.pub$/.test(name))
    .sort()
    .map((name) => publicKeyWithoutComment(readFileSync(join(sshDir, name), "utf8")));
}

/** Removes what is there first: a symlink in the image must never lead a write out of it onto the machine. */
function replaceFile(path: string, content: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  rmSync(path, { force: true });
  writeFileSync(path, content, { mode, flag: "wx" });
}
