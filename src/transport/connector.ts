import type { ConnectionSettings } from "../resolve.js";
import { LocalTransport } from "./local.js";
import { closeOpenSshMasters, connectOpenSsh } from "./openssh.js";
import { endpointLabel, RouteError, type RouteRequest, type SshRoute } from "./route.js";
import { closeBastions, connectSsh, type SshOptions } from "./ssh.js";
import { resolveRoutes } from "./sshConfig.js";
import { HostError, type Transport } from "./types.js";

/**
 * From inventory hosts to open transports: every host's route is resolved the way `ssh HOST`
 * would resolve it (ssh_config, ProxyJump), once for the whole run, then each host is reached
 * through ssh2 — in process, the fast path — or through the OpenSSH client where only it can
 * (user certificates, FIDO/PKCS#11 keys, options only it honours) or where the user asks for it.
 */

export type SshClientChoice = "auto" | "ssh2" | "openssh";

export interface ConnectorOptions extends SshOptions {
  /** --ssh-config FILE, as `ssh -F`. */
  sshConfigFile?: string | undefined;
  sshClient: SshClientChoice;
  /**
   * -u/--user, ansible.cfg's remote_user: the login of hosts whose inventory sets no ansible_user.
   * Like ansible_user it goes to ssh as `-o User=`, so it beats ssh_config's User (Ansible's ssh plugin does the same).
   */
  defaultUser?: string | undefined;
  /** --private-key, ansible.cfg's private_key_file: the key of hosts whose inventory sets none (tried before ssh_config's IdentityFile). */
  defaultPrivateKeyFile?: string | undefined;
}

export interface HostToReach {
  name: string;
  connection: ConnectionSettings;
}

export interface HostConnector {
  connect(host: HostToReach): Promise<Transport>;
  /** How the host is reached, for --verbose: "ssh2 root@10.0.0.5:22 via bastion …". */
  describe(host: HostToReach): string;
  /** Something the user should know once (ssh_config not read because ssh is missing). */
  notice: string | null;
  /** Ends shared bastion connections and OpenSSH masters. */
  close(): Promise<void>;
}

export async function prepareConnector(hosts: HostToReach[], opts: ConnectorOptions): Promise<HostConnector> {
  const overSsh = hosts.filter((h) => h.connection.kind === "ssh");
  const { routes, notice } = await resolveRoutes(
    overSsh.map((h) => routeRequest(h.connection, opts)),
    { configFile: opts.sshConfigFile },
  );
  const routeOf = new Map<string, SshRoute | RouteError>(overSsh.map((h, i) => [h.name, routes[i]!]));
  const route = (host: HostToReach): SshRoute => {
    const r = routeOf.get(host.name);
    if (r === undefined) throw new HostError(`no route was resolved for ${host.name}`, "unreachable");
    if (r instanceof RouteError) throw new HostError(r.message, "unreachable");
    return r;
  };
  return {
    notice,
    async connect(host) {
      if (host.connection.kind === "local") return new LocalTransport(host.name, opts.commandTimeoutMs);
      const r = route(host);
      const client = clientFor(host.connection, r, opts.sshClient);
      return client === "openssh" ? connectOpenSsh(host.name, r, opts) : connectSsh(host.name, r, opts);
    },
    describe(host) {
      if (host.connection.kind === "local") return "local (no SSH)";
      const r = routeOf.get(host.name);
      if (r === undefined || r instanceof RouteError) return "no route";
      let client: string;
      try {
        client = clientFor(host.connection, r, opts.sshClient);
      } catch {
        client = "refused: needs the OpenSSH client";
      }
      const via =
        r.jumps.length > 0
          ? ` via ${r.jumps.map(endpointLabel).join(" → ")}`
          : r.target.proxyCommand
            ? ` via ProxyCommand`
            : "";
      return `${client} ${endpointLabel(r.target)}${via}`;
    },
    async close() {
      closeBastions(opts);
      await closeOpenSshMasters();
    },
  };
}

export function routeRequest(
  c: ConnectionSettings,
  defaults: Pick<ConnectorOptions, "defaultUser" | "defaultPrivateKeyFile"> = {},
): RouteRequest {
  return {
    destination: c.host,
    user: c.user ?? defaults.defaultUser,
    port: c.port,
    identityFile: c.privateKeyFile ?? defaults.defaultPrivateKeyFile,
    sshArgs: c.sshArgs,
  };
}

/** Why only the OpenSSH client can reach this host, or null. */
export function openSshReason(c: ConnectionSettings, route: SshRoute): string | null {
  if (c.openSshOnlyOptions.length > 0)
    return `its ssh options set ${c.openSshOnlyOptions.join(", ")}, which only the OpenSSH client honours`;
  for (const e of [...route.jumps, route.target]) {
    if (e.needsOpenSsh) return e === route.target ? e.needsOpenSsh : `bastion ${e.alias}: ${e.needsOpenSsh}`;
  }
  return null;
}

function clientFor(c: ConnectionSettings, route: SshRoute, choice: SshClientChoice): "ssh2" | "openssh" {
  if (choice === "openssh") return "openssh";
  const reason = openSshReason(c, route);
  if (reason === null) return "ssh2";
  if (choice === "auto") return "openssh";
  throw new HostError(
    `this host needs the OpenSSH client (${reason}), but --ssh-client ssh2 was given; use --ssh-client auto`,
    "unreachable",
  );
}
