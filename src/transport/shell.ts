/** POSIX single-quoting: safe for any byte string in sh, dash and bash alike (unlike bash's $'…'). */
export function shQuote(s: string): string {
  if (s === "") return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function shJoin(argv: readonly string[]): string {
  return argv.map(shQuote).join(" ");
}
