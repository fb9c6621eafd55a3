import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runChecked } from "./shell.js";

// Each host gets private copies of /etc, /home and /root, bind-mounted over the real ones inside its mount namespace.
// Users are created once in a template (inside a throwaway mount namespace, so the machine's /etc is never touched)
// and the template is copied per host, which is much cheaper than running useradd for each host.

export const FLEET_USERS = ["root", "deploy", "deployw"] as const;
export const PRIVATE_DIRS = ["etc", "home", "root"] as const;

const SUDOERS_FILE = "etc/sudoers.d/provision-fleet";
const AUTHORIZED_KEYS_DIR = "etc/ssh/authorized_keys";

const HOST_KEY_FILE = "ssh/ssh_host_ed25519_key";
const HOST_CERTIFICATE_FILE = `${HOST_KEY_FILE}-cert.pub`;
const USER_CA_FILE = "ssh/user_ca.pub";

export interface SshdFeatures {
  /** sshd presents /etc/ssh/ssh_host_ed25519_key-cert.pub; the caller signs the host key before sshd starts. */
  hostCertificate: boolean;
  /** sshd accepts user certificates of the CA that buildTemplate put in every host's /etc/ssh. */
  trustedUserCa: boolean;
}

export interface PreparedHost {
  /** "ssh-ed25519 AAAA…" */
  publicKey: string;
  /** On the controller's side, for signing. */
  hostPublicKeyFile: string;
}

export async function buildTemplate(
  templateDir: string,
  clientPublicKey: string,
  sudoPassword: string,
  userCaPublicKey?: string,
): Promise<void> {
  mkdirSync(templateDir, { recursive: true });
  await runChecked("cp", ["-a", "/etc", join(templateDir, "etc")]);
  await createHomeDirs(templateDir);
  removeMachineSshdSettings(templateDir);
  writeAuthorizedKeys(templateDir, clientPublicKey);
  if (userCaPublicKey !== undefined)
    writeFileSync(join(templateDir, "etc", USER_CA_FILE), `${userCaPublicKey.trim()}\n`);
  await writeSudoers(templateDir);
  await createUsers(templateDir, sudoPassword);
}

/** Copies the template into hostDir and makes it a distinct host. */
export async function prepareHostFs(
  templateDir: string,
  hostDir: string,
  hostName: string,
  address: string,
  features: SshdFeatures,
): Promise<PreparedHost> {
  await runChecked("cp", ["-a", templateDir, hostDir]);
  const etc = join(hostDir, "etc");
  const hostKeyFile = join(etc, HOST_KEY_FILE);
  await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", hostName, "-f", hostKeyFile]);
  writeFileSync(join(etc, "ssh/sshd_config"), sshdConfig(address, features));
  writeFileSync(join(etc, "hostname"), `${hostName}\n`);
  writeFileSync(join(etc, "hosts"), hostsFileFor(readFileSync(join(etc, "hosts"), "utf8"), hostName));
  // Facts gathering may identify hosts by machine-id, so each host needs its own.
  writeFileSync(join(etc, "machine-id"), `${randomBytes(16).toString("hex")}\n`);
  return {
    publicKey: publicKeyWithoutComment(readFileSync(`${hostKeyFile}.pub`, "utf8")),
    hostPublicKeyFile: `${hostKeyFile}.pub`,
  };
}

export function publicKeyWithoutComment(publicKeyLine: string): string {
  return publicKeyLine.trim().split(/\s+/).slice(0, 2).join(" ");
}

// sshd keeps the FIRST occurrence of most keywords: a line a test appends overrides nothing set here. Hence
// AllowTcpForwarding stays unset (default yes, which bastions need), so a test can still append `AllowTcpForwarding no`.
function sshdConfig(address: string, features: SshdFeatures): string {
  return [
    "# Private sshd of a provision test-fleet host (test/fleet).",
    `ListenAddress ${address}`,
    `HostKey /etc/${HOST_KEY_FILE}`,
    ...(features.hostCertificate ? [`HostCertificate /etc/${HOST_CERTIFICATE_FILE}`] : []),
    ...(features.trustedUserCa ? [`TrustedUserCAKeys /etc/${USER_CA_FILE}`] : []),
    "PidFile none",
    "AuthorizedKeysFile /etc/ssh/authorized_keys/%u",
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM yes",
    // VERBOSE also logs each public key offered (accepted, postponed or failed): tests read the
    // log to prove that no authentication was attempted.
    "LogLevel VERBOSE",
    // Fleet runs open many connections at once; the defaults (10:30:100, 10) would refuse some of them.
    "MaxStartups 200:30:400",
    "MaxSessions 50",
    "X11Forwarding no",
    "PrintMotd no",
    "AcceptEnv LANG LC_*",
    "Subsystem sftp /usr/lib/openssh/sftp-server",
    "",
  ].join("\n");
}

function hostsFileFor(machineHosts: string, hostName: string): string {
  const otherLines = machineHosts
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.trim().startsWith("127.0.1.1"));
  // Without its own name resolvable, sudo prints "unable to resolve host" on stderr.
  return [...otherLines, `127.0.1.1\t${hostName}`, ""].join("\n");
}

async function createHomeDirs(templateDir: string): Promise<void> {
  mkdirSync(join(templateDir, "home"), { mode: 0o755 });
  const rootHome = join(templateDir, "root");
  mkdirSync(rootHome);
  await runChecked("cp", ["-a", "/etc/skel/.", rootHome]);
  // After the copy: `cp -a skel/.` also copies skel's own 0755 mode onto the target.
  chmodSync(rootHome, 0o700);
}

function removeMachineSshdSettings(templateDir: string): void {
  const sshDir = join(templateDir, "etc/ssh");
  for (const file of ["ssh_host_rsa_key", "ssh_host_ecdsa_key", "ssh_host_ed25519_key", "ssh_host_dsa_key"]) {
    rmSync(join(sshDir, file), { force: true });
    rmSync(join(sshDir, `${file}.pub`), { force: true });
  }
  rmSync(join(sshDir, "sshd_config.d"), { recursive: true, force: true });
}

function writeAuthorizedKeys(templateDir: string, clientPublicKey: string): void {
  const dir = join(templateDir, AUTHORIZED_KEYS_DIR);
  mkdirSync(dir, { mode: 0o755 });
  for (const user of FLEET_USERS) {
    const file = join(dir, user);
    writeFileSync(file, `${clientPublicKey.trim()}\n`);
    chmodSync(file, 0o644);
  }
}

async function writeSudoers(templateDir: string): Promise<void> {
  const file = join(templateDir, SUDOERS_FILE);
  writeFileSync(file, ["deploy ALL=(ALL:ALL) NOPASSWD: ALL", "deployw ALL=(ALL:ALL) ALL", ""].join("\n"));
  chmodSync(file, 0o440);
  await runChecked("visudo", ["-c", "-q", "-f", file]);
}

const CREATE_USERS_SCRIPT = `
set -e
mount --bind "$1/etc" /etc
mount --bind "$1/home" /home
for user in deploy deployw; do
  useradd --create-home --no-log-init --user-group --shell /bin/bash "$user"
done
# '*' instead of useradd's locking '!': key logins must work, password logins must not.
usermod --password '*' deploy
chpasswd
`;

async function createUsers(templateDir: string, sudoPassword: string): Promise<void> {
  await runChecked(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-c", CREATE_USERS_SCRIPT, "sh", templateDir],
    {
      input: `deployw:${sudoPassword}\n`,
    },
  );
}
