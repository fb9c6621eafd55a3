/**
 * Python's `shlex.split(s, comments, posix=True)`, character for character: the lexer Ansible's
 * INI inventory plugin splits host lines with (`shlex_split(line, comments=True)`).
 *
 * It is a port of `shlex.shlex.read_token` with `whitespace_split = True` and posix on:
 * - whitespace is only space, tab, CR and LF;
 * - `'…'` keeps everything literally; `"…"` lets a backslash escape only `"` and `\` (before any
 *   other character the backslash stays); outside quotes a backslash escapes any character;
 * - quotes may open and close in the middle of a word (`a"b c"d` is one token `ab cd`), and `''`
 *   is an empty token;
 * - with comments on, `#` outside quotes ends the current token and skips to the end of the line,
 *   even in the middle of a word (`a#b` is `a`).
 */

/** Python's ValueError from shlex, with the offset in the input it is about. */
export class ShlexError extends Error {
  constructor(
    /** Python's own message: `No closing quotation` or `No escaped character`. */
    readonly reason: "No closing quotation" | "No escaped character",
    /** Index in the input of the quote that is never closed, or of the trailing backslash. */
    readonly offset: number,
  ) {
    super(reason);
    this.name = "ShlexError";
  }
}

/** A token and where it came from. */
export interface ShlexToken {
  value: string;
  /** Index in the input of the token's first character as written (a quote or backslash included). */
  start: number;
  /**
   * For each character of `value`, the index in the input it was copied from; absent when the
   * token is a verbatim slice of the input (character i then came from `start + i`).
   */
  offsets?: number[];
}

/** Where character `i` of a token came from in the input (one past the end for `i === value.length`). */
export function sourceOffset(token: ShlexToken, i: number): number {
  if (!token.offsets) return token.start + i;
  return i < token.offsets.length ? token.offsets[i]! : (token.offsets.at(-1) ?? token.start - 1) + 1;
}

const WHITESPACE = " \t\r\n";

/** `shlex.split(s, comments=comments, posix=True)`; throws ShlexError where Python raises ValueError. */
export function shlexSplit(s: string, options: { comments?: boolean } = {}): string[] {
  return shlexTokens(s, options).map((t) => t.value);
}

/** As `shlexSplit`, keeping each token's position in the input. */
export function shlexTokens(s: string, options: { comments?: boolean } = {}): ShlexToken[] {
  const comments = options.comments ?? false;
  if (!/['"\\]/.test(s)) return plainTokens(s, comments);
  const tokens: ShlexToken[] = [];
  // The lexer's state: " " between tokens, "a" in a word, a quote char inside quotes, "\\" after a
  // backslash; null at end of input. It persists from one token to the next, as in Python.
  let state: string | null = " ";
  let i = 0;
  const n = s.length;
  while (state !== null) {
    let value = "";
    let offsets: number[] = [];
    let start = -1;
    let quoted = false;
    let escapedState = " ";
    let quoteStart = -1;
    let escapeStart = -1;
    for (;;) {
      const at = i;
      const c = i < n ? s.charAt(i++) : "";
      if (state === " ") {
        if (c === "") {
          state = null;
          break;
        } else if (WHITESPACE.includes(c)) {
          if (value !== "" || quoted) break;
        } else if (comments && c === "#") {
          i = skipLine(s, i);
        } else if (c === "\\") {
          escapedState = "a";
          state = "\\";
          escapeStart = at;
          if (start === -1) start = at;
        } else if (c === "'" || c === '"') {
          state = c;
          quoteStart = at;
          if (start === -1) start = at;
        } else {
          value = c;
          offsets = [at];
          state = "a";
          if (start === -1) start = at;
        }
      } else if (state === "'" || state === '"') {
        quoted = true;
        if (c === "") throw new ShlexError("No closing quotation", quoteStart);
        if (c === state) {
          state = "a";
        } else if (c === "\\" && state === '"') {
          escapedState = state;
          state = "\\";
          escapeStart = at;
        } else {
          value += c;
          offsets.push(at);
        }
      } else if (state === "\\") {
        if (c === "") throw new ShlexError("No escaped character", escapeStart);
        // In posix shells only the quote itself or the backslash may be escaped within quotes.
        if (escapedState === '"' && c !== "\\" && c !== escapedState) {
          value += "\\";
          offsets.push(escapeStart);
        }
        value += c;
        offsets.push(at);
        state = escapedState;
      } else {
        // state "a": inside a word
        if (c === "") {
          state = null;
          break;
        } else if (WHITESPACE.includes(c)) {
          state = " ";
          if (value !== "" || quoted) break;
        } else if (comments && c === "#") {
          i = skipLine(s, i);
          state = " ";
          if (value !== "" || quoted) break;
        } else if (c === "'" || c === '"') {
          state = c;
          quoteStart = at;
        } else if (c === "\\") {
          escapedState = "a";
          state = "\\";
          escapeStart = at;
        } else {
          value += c;
          offsets.push(at);
        }
      }
    }
    // Python returns None (end of input) for an empty, unquoted token.
    if (value === "" && !quoted) break;
    tokens.push({ value, start, offsets });
  }
  return tokens;
}

/** The same result for input without quotes or backslashes: runs of non-whitespace, cut at `#`. */
function plainTokens(s: string, comments: boolean): ShlexToken[] {
  const tokens: ShlexToken[] = [];
  const word = comments ? /[^ \t\r\n#]+|#/g : /[^ \t\r\n]+/g;
  for (let m = word.exec(s); m !== null; m = word.exec(s)) {
    if (comments && m[0] === "#") {
      word.lastIndex = skipLine(s, m.index + 1);
      continue;
    }
    tokens.push({ value: m[0], start: m.index });
  }
  return tokens;
}

/** `instream.readline()`: everything up to and including the next LF. */
function skipLine(s: string, i: number): number {
  const nl = s.indexOf("\n", i);
  return nl === -1 ? s.length : nl + 1;
}
