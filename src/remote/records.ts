import { randomBytes } from "node:crypto";

/**
 * Remote scripts answer in records: a line `@@<nonce> <id> <status>` followed by one line of
 * base64 payload. The nonce makes a record line impossible to forge from file contents or
 * command output, and base64 keeps every byte (tabs, missing final newlines) exact.
 */
export interface RemoteRecord {
  id: string;
  status: string;
  payload: string;
  raw: Buffer;
}

export function newNonce(): string {
  return randomBytes(8).toString("hex");
}

/** Shell functions every remote script starts with. */
export function recordPrelude(nonce: string): string {
  return [
    "set -u",
    "umask 022",
    `rec() { printf '@@${nonce} %s %s\\n' "$1" "$2"; }`,
    // base64 of stdin on one line. GNU's `-w0` costs one process per value; where base64 has no
    // -w (old busybox), the tr pipeline does the same with two. Detected once per script.
    "if base64 -w0 </dev/null >/dev/null 2>&1; then b64() { base64 -w0; echo; }; else b64() { base64 | tr -d '\\n'; echo; }; fi",
  ].join("\n");
}

export function parseRecords(stdout: string, nonce: string): Map<string, RemoteRecord> {
  const out = new Map<string, RemoteRecord>();
  const lines = stdout.split("\n");
  const head = `@@${nonce} `;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith(head)) continue;
    const [id, status] = line.slice(head.length).split(" ");
    if (id === undefined || status === undefined) continue;
    const next = lines[i + 1] ?? "";
    const raw = next.startsWith("@@") ? Buffer.alloc(0) : Buffer.from(next, "base64");
    if (!next.startsWith("@@")) i++;
    out.set(id, { id, status, payload: raw.toString("utf8"), raw });
  }
  return out;
}
