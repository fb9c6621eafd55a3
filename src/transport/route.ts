/**
 * How a host is reached, as the user's OpenSSH would reach it (`ssh -G` for the target and for
 * each ProxyJump hop), after the inventory's own settings. Produced by sshConfig.ts, consumed by
 * both transports (ssh2 in ssh.ts, the OpenSSH client in openssh.ts). Pure data.
 */

/** What provision asks OpenSSH to resolve for one inventory host: Ansible's ssh plugin's view. */
export interface RouteRequest {
  /** ansible_host, else the inventory name: what `ssh` is given as its destination. */
  destination: string;
  /** Set only when the inventory sets them (ansible_user, ansible_port, ansible_ssh_private_key_file); they beat ssh_config, like `-o`. */
  user?: string | undefined;
  port?: number | undefined;
  identityFile?: string | undefined;
  /** ansible_ssh_common_args + ansible_ssh_extra_args, split and checked (only -o K=V, -J, -i, -l, -p, -F). */
  sshArgs: string[];
}

/** One endpoint of a route: a ProxyJump hop or the target, with the effective settings OpenSSH computed for it. */
export interface SshEndpoint {
  /** The name ssh was given for this endpoint (the destination, or the host part of a ProxyJump entry). */
  alias: string;
  /** Where TCP goes (HostName, tokens expanded). */
  hostname: string;
  port: number;
  user: string;
  /** Absolute paths, in OpenSSH's order; when none is configured, OpenSSH's defaults (which may not exist). */
  identityFiles: string[];
  /** True when identityFiles came from configuration (IdentityFile, -i, ansible_ssh_private_key_file), false for the defaults. */
  identityFilesConfigured: boolean;
  identitiesOnly: boolean;
  /** CertificateFile entries, absolute. */
  certificateFiles: string[];
  /** UserKnownHostsFile then GlobalKnownHostsFile, absolute, as configured (files may not exist). */
  knownHostsFiles: string[];
  /** Where accepted new host keys are recorded: the first UserKnownHostsFile; null when it is /dev/null or none (nothing is kept). */
  recordHostKeysIn: string | null;
  /** The name known_hosts is searched for (HostKeyAlias, else hostname). */
  hostKeyName: string;
  /** The port it is searched for: the port, or 22 with a HostKeyAlias (ssh looks the alias up bare). */
  hostKeyPort: number;
  strictHostKeyChecking: "yes" | "no" | "ask" | "accept-new";
  /** ConnectTimeout; null when unset. */
  connectTimeoutMs: number | null;
  /** ServerAliveInterval/CountMax; null when ServerAliveInterval is 0 (off). */
  serverAlive: { intervalMs: number; countMax: number } | null;
  /** ProxyCommand with %h %p %r %n %% expanded; null when unset or "none". A target has either this or jumps; jumps[0] may have its own. */
  proxyCommand: string | null;
  /**
   * The arguments that make `ssh` reach this endpoint with exactly these settings, destination
   * last: `-F FILE` when one was given, the inventory's overrides, the destination. Used by the
   * OpenSSH-client transport; never contains a secret.
   */
  sshArgv: string[];
  /** Why ssh2 cannot reach this endpoint (user certificate, FIDO or PKCS#11 key), or null. */
  needsOpenSsh: string | null;
}

export interface SshRoute {
  target: SshEndpoint;
  /** ProxyJump hops, from the controller outward (jumps[0] is dialled first). */
  jumps: SshEndpoint[];
}

/** A route OpenSSH could not resolve (bad ssh_config line, ProxyJump loop); the message names file and line when ssh does. */
export class RouteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RouteError";
  }
}

/** `user@host:port`, how messages name an endpoint. */
export function endpointLabel(e: Pick<SshEndpoint, "user" | "hostname" | "port">): string {
  return `${e.user}@${e.hostname}:${e.port}`;
}
