/**
 * /proc/net/tcp{,6} print addresses as the kernel holds them: each 32-bit word of the address in
 * the host's byte order, in hex, then `:` and the port in hex. Decoded here, on the controller.
 */
export interface Endpoint {
  address: string;
  port: number;
  /** "198.18.0.3:5201", "[2001:db8::1]:443"; an IPv4-mapped IPv6 address reads as IPv4. */
  name: string;
}

export function decodeEndpoint(hex: string, littleEndian: boolean): Endpoint | null {
  const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(hex);
  if (!m) return null;
  const bytes: number[] = [];
  for (let w = 0; w < m[1]!.length; w += 8) {
    const word = m[1]!
      .slice(w, w + 8)
      .match(/../g)!
      .map((b) => parseInt(b, 16));
    bytes.push(...(littleEndian ? word.reverse() : word));
  }
  const port = parseInt(m[2]!, 16);
  const mapped =
    bytes.length === 16 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255;
  if (bytes.length === 4 || mapped) {
    const address = bytes.slice(-4).join(".");
    return { address, port, name: `${address}:${port}` };
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The WHATWG URL parser prints IPv6 in its canonical compressed form (RFC 5952).
  const address = new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
  return { address, port, name: `[${address}]:${port}` };
}
