import { isIP } from "node:net";
import type { Transport } from "./types.js";

/**
 * Through a tunnel (a bastion, a ProxyCommand) or to a host name, the address the host was reached
 * at is not known here; the host says it (SSH_CONNECTION's third field). Roles must know it: it is
 * never to be removed from the host.
 */
export async function addressTheHostSees(transport: Transport): Promise<string | null> {
  const r = await transport.exec('set -- $SSH_CONNECTION; printf "%s" "$3"');
  const address = r.stdout.trim();
  return r.code === 0 && isIP(address) !== 0 ? address : null;
}
