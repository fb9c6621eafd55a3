import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { publicKeyWithoutComment } from "./hostfs.js";
import { runChecked } from "./shell.js";
import { subnetBase } from "./topology.js";

// OpenSSH certificate authorities of one fleet, made on demand (fleets that don't ask pay nothing).

export interface HostCertificateSpec {
  /** 'fleet' (default): the CA in Fleet.certKnownHostsFile; 'foreign': a CA no fleet file trusts. */
  signedBy?: "fleet" | "foreign";
  /** Default: the host's address and name. */
  principals?: string[];
  /** ssh-keygen -V argument, e.g. '20200101:20200102' for an expired certificate. Default '-5m:+1d'. */
  validity?: string;
}

export type HostCertificatePolicy = (host: { name: string; address: string }) => HostCertificateSpec | null;

export interface HostCertificateAuthorities {
  fleetCaKeyFile: string;
  foreignCaKeyFile: string;
  hostCaPublicKeyFile: string;
  certKnownHostsFile: string;
}

export interface UserCertificate {
  userCaPublicKeyFile: string;
  userCertKeyFile: string;
}

export const USER_CERT_PRINCIPALS = ["root", "deploy", "deployw"] as const;
const DEFAULT_VALIDITY = "-5m:+1d";

export async function createHostCertificateAuthorities(
  dir: string,
  prefix: string,
  subnets: readonly string[],
): Promise<HostCertificateAuthorities> {
  const fleetCaKeyFile = join(dir, "host_ca");
  const foreignCaKeyFile = join(dir, "foreign_host_ca");
  await Promise.all([
    newKey(fleetCaKeyFile, `provision-fleet-${prefix}-host-ca`),
    newKey(foreignCaKeyFile, `provision-fleet-${prefix}-foreign-ca`),
  ]);
  const hostCaPublicKeyFile = `${fleetCaKeyFile}.pub`;
  const certKnownHostsFile = join(dir, "known_hosts_cert");
  writeFileSync(
    certKnownHostsFile,
    certAuthorityLine(subnets, publicKeyWithoutComment(readFileSync(hostCaPublicKeyFile, "utf8"))),
  );
  return { fleetCaKeyFile, foreignCaKeyFile, hostCaPublicKeyFile, certKnownHostsFile };
}

function certAuthorityLine(subnets: readonly string[], caPublicKey: string): string {
  const patterns = subnets.map((subnet) => `${subnetBase(subnet)}.*`).join(",");
  return `@cert-authority ${patterns} ${caPublicKey}\n`;
}

/** Writes `<hostPublicKeyFile minus .pub>-cert.pub`, which sshd finds through HostCertificate. */
export async function signHostKey(
  authorities: HostCertificateAuthorities,
  hostPublicKeyFile: string,
  host: { name: string; address: string },
  spec: HostCertificateSpec,
): Promise<void> {
  const caKeyFile = spec.signedBy === "foreign" ? authorities.foreignCaKeyFile : authorities.fleetCaKeyFile;
  const principals = spec.principals ?? [host.address, host.name];
  await runChecked("ssh-keygen", [
    "-q",
    "-h",
    "-s",
    caKeyFile,
    "-I",
    host.name,
    "-n",
    principals.join(","),
    "-V",
    spec.validity ?? DEFAULT_VALIDITY,
    hostPublicKeyFile,
  ]);
}

/** A user CA plus a client key that only its certificate (`<key>-cert.pub`, found by OpenSSH on its own) lets in. */
export async function createUserCertificate(dir: string, prefix: string): Promise<UserCertificate> {
  const userCaKeyFile = join(dir, "user_ca");
  const userCertKeyFile = join(dir, "user_cert_ed25519");
  await Promise.all([
    newKey(userCaKeyFile, `provision-fleet-${prefix}-user-ca`),
    newKey(userCertKeyFile, `provision-fleet-${prefix}-user-cert`),
  ]);
  await runChecked("ssh-keygen", [
    "-q",
    "-s",
    userCaKeyFile,
    "-I",
    `provision-fleet-${prefix}-user`,
    "-n",
    USER_CERT_PRINCIPALS.join(","),
    "-V",
    DEFAULT_VALIDITY,
    `${userCertKeyFile}.pub`,
  ]);
  return { userCaPublicKeyFile: `${userCaKeyFile}.pub`, userCertKeyFile };
}

async function newKey(file: string, comment: string): Promise<void> {
  await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}
