import { createRequire } from "node:module";
import { HOST_CERTIFICATE_ALGORITHMS } from "./hostCertificate.js";

const require = createRequire(import.meta.url);

/**
 * Whether the installed ssh2 carries patches/ssh2+1.17.0.patch (applied by `patch-package` on
 * npm install). Unpatched, ssh2 throws "Unsupported algorithm" for the certificate algorithms
 * and never shows a certificate to the hostVerifier, so the transport must check this first.
 */
export function ssh2NegotiatesHostCertificates(): boolean {
  const constants = require("ssh2/lib/protocol/constants.js") as { SUPPORTED_SERVER_HOST_KEY?: readonly string[] };
  const supported = constants.SUPPORTED_SERVER_HOST_KEY ?? [];
  return HOST_CERTIFICATE_ALGORITHMS.every((algorithm) => supported.includes(algorithm));
}
