/** Numbers and counted nouns in what provision prints: one formatter, one plural rule. */

// One formatter for every call: toLocaleString builds a new Intl.NumberFormat each time.
const EN_US = new Intl.NumberFormat("en-US");

/** 28232 → "28,232", 1048576n → "1,048,576": thousands separators, as every report prints counts. */
export function thousands(n: number | bigint): string {
  return EN_US.format(n);
}

/**
 * The count with its noun: `plural(1, "socket")` → "1 socket", `plural(28232, "socket")` →
 * "28,232 sockets", `plural(2, "process")` → "2 processes" (a word ending in s, x, z, ch or sh
 * takes "es"); other plurals are given: `plural(3, "entry", "entries")`.
 */
export function plural(n: number | bigint, word: string, pluralWord?: string): string {
  return `${thousands(n)} ${n === 1 || n === 1n ? word : (pluralWord ?? regularPlural(word))}`;
}

function regularPlural(word: string): string {
  return /(?:s|x|z|ch|sh)$/.test(word) ? `${word}es` : `${word}s`;
}
