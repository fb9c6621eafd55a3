import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sshClientDefaults } from "../fleet.js";
import { runChecked } from "../shell.js";

// What a client (provision, ansible, ssh) needs to reach the fleet: a key, the hosts' real keys, an inventory.

export interface ClientFiles {
  /** ed25519 private key (no passphrase) authorized for root and deploy on every host. */
  clientKeyFile: string;
  /** One line per host and host key type: "<address> <type> <key>". */
  knownHostsFile: string;
  /** Ansible YAML inventory: all.children.fleet.hosts.<name>.ansible_host. */
  inventoryFile: string;
  /** `ssh -F <file> <address>` logs into a host as root, strictly checking its host key. */
  sshConfigFile: string;
}

export interface ReachableHost {
  name: string;
  address: string;
  hostPublicKeys: string[];
}

export function clientFilesIn(dir: string): ClientFiles {
  return {
    clientKeyFile: join(dir, "client_ed25519"),
    knownHostsFile: join(dir, "known_hosts"),
    inventoryFile: join(dir, "inventory.yml"),
    sshConfigFile: join(dir, "ssh_config"),
  };
}

/** Returns the public key line to authorize. */
export async function createClientKey(files: ClientFiles, comment: string): Promise<string> {
  await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", files.clientKeyFile]);
  return `${files.clientKeyFile}.pub`;
}

export function writeClientFiles(files: ClientFiles, hosts: readonly ReachableHost[]): void {
  writeFileSync(
    files.knownHostsFile,
    hosts.flatMap((host) => host.hostPublicKeys.map((key) => `${host.address} ${key}\n`)).join(""),
  );
  writeFileSync(files.inventoryFile, inventoryYaml(hosts, files.clientKeyFile));
  writeFileSync(files.sshConfigFile, sshClientDefaults(files));
}

function inventoryYaml(hosts: readonly ReachableHost[], clientKeyFile: string): string {
  return [
    "all:",
    "  vars:",
    "    ansible_user: root",
    `    ansible_ssh_private_key_file: ${JSON.stringify(clientKeyFile)}`,
    "  children:",
    "    fleet:",
    "      hosts:",
    ...hosts.flatMap((host) => [`        ${host.name}:`, `          ansible_host: ${host.address}`]),
    "",
  ].join("\n");
}
