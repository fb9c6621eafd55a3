/**
 * Python's `ast.literal_eval` (CPython 3.11), as far as Ansible's INI inventory plugin relies on it:
 * its `_parse_value` turns every variable value into a Python object with literal_eval, and keeps
 * the text itself when literal_eval raises ValueError or SyntaxError.
 *
 * Accepted, as in Python: str literals (`'…'`, `"…"`, triple quotes, escapes, `r`/`u` prefixes,
 * adjacent literals concatenated), bytes (`b'…'`), ints (decimal, `0x`, `0o`, `0b`, `_`
 * separators), floats (`1.5`, `.5`, `1.`, `1e3`; `1e999` is infinity), unary `+`/`-` on numbers,
 * `True`/`False`/`None`, lists, tuples (with or without parentheses: `1, 2`), dicts, sets and
 * `set()`, nested up to Python's 200 brackets, with `#` comments and spaces between tokens.
 *
 * The Python objects map to JSON-like values: str → string, int/float → number, bool → boolean,
 * None → null, list/tuple/set → array, dict → plain object, bytes → its UTF-8 text (decoded like
 * Ansible's `to_text`, undecodable bytes as lone surrogates U+DC80..U+DCFF).
 *
 * Python objects with no faithful JSON-like value make the literal "unrepresentable": callers
 * keep the text, as Ansible would have kept it had literal_eval refused it. They are:
 * - ints that a double cannot hold exactly (beyond 2**53 and not a multiple of the lost bits),
 *   decimal ints of more than 4300 digits (Python itself refuses those);
 * - complex numbers (`1j`, `1+2j`) anywhere in the value, and `...` (Ellipsis);
 * - dict keys that JSON cannot hold: tuples, bytes, complex, Ellipsis (`ansible-inventory --list`
 *   fails on those too);
 * - `\N{NAME}` escapes: Node has no Unicode name table.
 * Dict keys become strings as `json.dumps` writes them (what `ansible-inventory --list` prints):
 * `1` → "1", `1.5` → "1.5", `True` → "true", `None` → "null"; keys equal in Python (`1`, `1.0`,
 * `True`) are one key, the first written, holding the last value. Sets keep the order written
 * (CPython iterates them in hash order, which for strings changes from run to run) without
 * duplicates.
 */

/** The exception Python would raise; only TypeError escapes Ansible's `_parse_value`. */
export class PythonLiteralError extends Error {
  constructor(
    readonly kind: "SyntaxError" | "ValueError" | "TypeError",
    message: string,
  ) {
    super(message);
    this.name = "PythonLiteralError";
  }
}

/** A literal Python accepts whose value has no JSON-like equivalent here (see the module comment). */
export class UnrepresentableLiteral extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnrepresentableLiteral";
  }
}

/**
 * Ansible's `InventoryModule._parse_value(v)`: literal_eval's value, or `text` unchanged when
 * Python raises ValueError or SyntaxError (or when the value is unrepresentable). Throws
 * PythonLiteralError with kind "TypeError" where Python raises TypeError (an unhashable dict key
 * or set member, e.g. `{[1]: 2}`): Ansible fails on the whole inventory file then.
 */
export function parseIniValue(text: string): unknown {
  try {
    return evalLiteral(text);
  } catch (err) {
    if (!(err instanceof Failure)) throw err;
    if (err.kind !== "TypeError") return text;
    throw new PythonLiteralError(err.kind, err.message);
  }
}

/** `ast.literal_eval(source)` mapped to JSON-like values; throws PythonLiteralError or UnrepresentableLiteral. */
export function literalEval(source: string): unknown {
  try {
    return evalLiteral(source);
  } catch (err) {
    if (!(err instanceof Failure)) throw err;
    if (err.kind === "Unrepresentable") throw new UnrepresentableLiteral(err.message);
    throw new PythonLiteralError(err.kind, err.message);
  }
}

/**
 * How evaluation fails inside this module: not an Error, so that failing (the common case for
 * INI values, most of which are plain text) costs no stack trace.
 */
class Failure {
  constructor(
    readonly kind: "SyntaxError" | "ValueError" | "TypeError" | "Unrepresentable",
    readonly message: string,
  ) {}
}

// Plain words and dotted numbers (`deploy`, `10.0.0.1`, `eu-west-1`) are never literals, except
// True/False/None; and plain decimal ints are common. Both skip the tokenizer.
const PLAIN_TEXT = /^[A-Za-z_][A-Za-z0-9_-]*$|^[0-9]+(?:\.[0-9]+){2,}$/;
const PLAIN_INT = /^-?[1-9][0-9]{0,14}$|^0$/;

function evalLiteral(source: string): unknown {
  if (PLAIN_INT.test(source)) return Number(source);
  if (PLAIN_TEXT.test(source) && source !== "True" && source !== "False" && source !== "None") {
    // A name (ValueError) or `a-b` (a BinOp of names: ValueError) or `1.2.3` (SyntaxError).
    throw new Failure("ValueError", "malformed node or string");
  }
  const node = parse(source.replace(/^[ \t]+/, ""));
  return toJs(evaluate(node));
}

// ---------------------------------------------------------------------------------------------
// Tokens

type Token =
  | { t: "num"; kind: "int"; v: bigint }
  | { t: "num"; kind: "float"; v: number }
  | { t: "num"; kind: "imag" }
  | { t: "str"; bytes: false; v: string }
  | { t: "str"; bytes: true; v: number[] }
  | { t: "name"; v: string }
  | { t: "op"; v: string }
  | { t: "newline" }
  | { t: "end" };

const MAX_NESTING = 200;
const EXPRESSION_STARTS = new Set(["(", "[", "{", "+", "-", "..."]);
const MAX_INT_DIGITS = 4300;

const DIGITS = "[0-9](?:_?[0-9])*";
const EXPONENT = `[eE][+-]?${DIGITS}`;
const POINT_FLOAT = `(?:${DIGITS})?\\.${DIGITS}|${DIGITS}\\.`;
const FLOAT_OR_IMAG = new RegExp(`(?:(?:${POINT_FLOAT})(?:${EXPONENT})?|${DIGITS}${EXPONENT})([jJ])?|${DIGITS}([jJ])`, "y");
const RADIX_INT = /0(?:[xX](?:_?[0-9a-fA-F])+|[oO](?:_?[0-7])+|[bB](?:_?[01])+)/y;
const DECIMAL_INT = /[1-9](?:_?[0-9])*|0(?:_?0)*/y;
// Python identifiers (approximately: only used to tell a name from a syntax error).
const NAME = /[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*/uy;
const STRING_PREFIXES = new Set(["", "r", "u", "b", "br", "rb"]);
const F_STRING_PREFIXES = new Set(["f", "fr", "rf"]);

function syntaxError(message: string): Failure {
  return new Failure("SyntaxError", message);
}

function tokenize(src: string): Token[] {
  if (src.includes("\0")) throw syntaxError("source code string cannot contain null bytes");
  const tokens: Token[] = [];
  let depth = 0;
  let i = 0;
  const n = src.length;
  let lineStart = true;
  while (i < n) {
    if (lineStart && depth === 0) {
      // A new logical line: indented content is an IndentationError (blank and comment lines aside).
      lineStart = false;
      let col = 0;
      for (; i < n && " \t\f".includes(src.charAt(i)); i++) {
        const w = src.charAt(i);
        col = w === " " ? col + 1 : w === "\t" ? (Math.floor(col / 8) + 1) * 8 : 0;
      }
      if (col > 0 && (i >= n || !"\n\r#".includes(src.charAt(i)))) throw syntaxError("unexpected indent");
      continue;
    }
    const c = src.charAt(i);
    if (c === " " || c === "\t" || c === "\f") {
      i++;
      continue;
    }
    if (c === "#") {
      while (i < n && src.charAt(i) !== "\n" && src.charAt(i) !== "\r") i++;
      continue;
    }
    if (c === "\\" && (src.charAt(i + 1) === "\n" || src.charAt(i + 1) === "\r")) {
      i += src.startsWith("\r\n", i + 1) ? 3 : 2;
      if (i >= n) throw syntaxError("unexpected EOF while parsing");
      continue;
    }
    if (c === "\n" || c === "\r") {
      i += src.startsWith("\r\n", i) ? 2 : 1;
      if (depth === 0) {
        tokens.push({ t: "newline" });
        lineStart = true;
      }
      continue;
    }
    if ((c >= "0" && c <= "9") || (c === "." && /[0-9]/.test(src.charAt(i + 1)))) {
      i = readNumber(src, i, tokens);
      continue;
    }
    if (c === "'" || c === '"') {
      i = readString(src, i, "", tokens);
      continue;
    }
    NAME.lastIndex = i;
    const name = NAME.exec(src);
    if (name) {
      const word = name[0];
      const after = i + word.length;
      const q = src.charAt(after);
      if ((q === "'" || q === '"') && (STRING_PREFIXES.has(word.toLowerCase()) || F_STRING_PREFIXES.has(word.toLowerCase()))) {
        // An f-string is a JoinedStr, which literal_eval rejects.
        if (F_STRING_PREFIXES.has(word.toLowerCase())) throw new Failure("ValueError", "malformed node or string");
        i = readString(src, after, word.toLowerCase(), tokens);
        continue;
      }
      tokens.push({ t: "name", v: word });
      i = after;
      continue;
    }
    if (src.startsWith("...", i)) {
      tokens.push({ t: "op", v: "..." });
      i += 3;
      continue;
    }
    if ("([{".includes(c)) {
      if (depth >= MAX_NESTING) throw syntaxError("too many nested parentheses");
      depth++;
    } else if (")]}".includes(c)) {
      if (depth === 0) throw syntaxError(`unmatched '${c}'`);
      depth--;
    } else if (!",:+-".includes(c)) {
      // Any other operator or character: not part of a literal (Python raises SyntaxError or,
      // for valid non-literal expressions, ValueError; both keep the text).
      throw syntaxError(`unexpected ${JSON.stringify(c)}`);
    }
    tokens.push({ t: "op", v: c });
    i++;
  }
  tokens.push({ t: "end" });
  return tokens;
}

function readNumber(src: string, i: number, tokens: Token[]): number {
  RADIX_INT.lastIndex = i;
  let m = RADIX_INT.exec(src);
  if (m) {
    tokens.push({ t: "num", kind: "int", v: BigInt(m[0].replace(/_/g, "")) });
    return i + m[0].length;
  }
  FLOAT_OR_IMAG.lastIndex = i;
  m = FLOAT_OR_IMAG.exec(src);
  if (m) {
    if (m[1] !== undefined || m[2] !== undefined) tokens.push({ t: "num", kind: "imag" });
    else tokens.push({ t: "num", kind: "float", v: Number(m[0].replace(/_/g, "")) });
    return i + m[0].length;
  }
  DECIMAL_INT.lastIndex = i;
  m = DECIMAL_INT.exec(src);
  if (!m) throw syntaxError("invalid decimal literal");
  const digits = m[0].replace(/_/g, "");
  // Python refuses to convert decimal ints of more than 4300 digits (sys.int_info.str_digits_check_threshold).
  if (digits.length > MAX_INT_DIGITS && /[1-9]/.test(digits)) throw syntaxError("Exceeds the limit (4300 digits) for integer string conversion");
  tokens.push({ t: "num", kind: "int", v: BigInt(digits) });
  return i + m[0].length;
}

function readString(src: string, i: number, prefix: string, tokens: Token[]): number {
  const quote = src.charAt(i);
  const triple = src.startsWith(quote.repeat(3), i);
  const delim = triple ? quote.repeat(3) : quote;
  let j = i + delim.length;
  const bodyStart = j;
  for (;;) {
    if (j >= src.length) throw syntaxError("unterminated string literal");
    const c = src.charAt(j);
    if (c === "\\") {
      j += src.startsWith("\r\n", j + 1) ? 3 : 2;
      continue;
    }
    if (!triple && (c === "\n" || c === "\r")) throw syntaxError("unterminated string literal");
    if (src.startsWith(delim, j)) break;
    j++;
  }
  if (j > src.length) throw syntaxError("unterminated string literal");
  const body = src.slice(bodyStart, j).replace(/\r\n?/g, "\n");
  const raw = prefix.includes("r");
  if (prefix.includes("b")) {
    if (/[^\x00-\x7f]/.test(body)) throw syntaxError("bytes can only contain ASCII literal characters");
    tokens.push({ t: "str", bytes: true, v: raw ? [...body].map((ch) => ch.charCodeAt(0)) : decodeBytesEscapes(body) });
  } else {
    tokens.push({ t: "str", bytes: false, v: raw ? body : decodeStrEscapes(body) });
  }
  return j + delim.length;
}

const SIMPLE_ESCAPES: Record<string, number> = { "\\": 0x5c, "'": 0x27, '"': 0x22, a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };

function decodeStrEscapes(body: string): string {
  if (!body.includes("\\")) return body;
  let out = "";
  let i = 0;
  while (i < body.length) {
    const c = body.charAt(i);
    if (c !== "\\") {
      out += c;
      i++;
      continue;
    }
    const e = body.charAt(i + 1);
    i += 2;
    if (e === "\n") continue;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += String.fromCharCode(simple);
    } else if (e >= "0" && e <= "7") {
      const m = /^[0-7]{1,3}/.exec(body.slice(i - 1, i + 2))!;
      out += String.fromCodePoint(parseInt(m[0], 8));
      i += m[0].length - 1;
    } else if (e === "x" || e === "u" || e === "U") {
      const len = e === "x" ? 2 : e === "u" ? 4 : 8;
      const hex = body.slice(i, i + len);
      if (hex.length !== len || !/^[0-9a-fA-F]*$/.test(hex)) throw syntaxError(`truncated \\${e} escape`);
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) throw syntaxError("illegal Unicode character");
      out += String.fromCodePoint(cp);
      i += len;
    } else if (e === "N") {
      throw new Failure("Unrepresentable", "\\N{...} escapes are not supported");
    } else {
      // Unknown escapes keep the backslash (Python warns, and keeps it).
      out += `\\${e}`;
    }
  }
  return out;
}

function decodeBytesEscapes(body: string): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < body.length) {
    const c = body.charAt(i);
    if (c !== "\\") {
      out.push(c.charCodeAt(0));
      i++;
      continue;
    }
    const e = body.charAt(i + 1);
    i += 2;
    if (e === "\n") continue;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out.push(simple);
    } else if (e >= "0" && e <= "7") {
      const m = /^[0-7]{1,3}/.exec(body.slice(i - 1, i + 2))!;
      out.push(parseInt(m[0], 8) & 0xff);
      i += m[0].length - 1;
    } else if (e === "x") {
      const hex = body.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw syntaxError("invalid \\x escape");
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(0x5c);
      if (e !== "") out.push(e.charCodeAt(0));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Syntax: the literal subset of Python's expression grammar, to an AST like Python's.

type Node =
  | { n: "const"; v: PyValue }
  | { n: "tuple" | "list" | "set"; items: Node[] }
  | { n: "dict"; keys: Node[]; values: Node[] }
  | { n: "emptySet" }
  | { n: "unary"; negative: boolean; operand: Node }
  | { n: "binop"; left: Node; right: Node }
  /** A name other than True/False/None: valid syntax that literal_eval rejects with ValueError. */
  | { n: "name" };

type PyValue =
  | { t: "str"; v: string }
  | { t: "bytes"; v: number[] }
  | { t: "int"; v: bigint }
  | { t: "float"; v: number }
  | { t: "bool"; v: boolean }
  | { t: "none" }
  | { t: "complex" }
  | { t: "ellipsis" }
  | { t: "tuple" | "list" | "set"; items: PyValue[] }
  | { t: "dict"; keys: PyValue[]; values: PyValue[] };

function parse(src: string): Node {
  const tokens = tokenize(src);
  let pos = 0;
  const peek = (): Token => tokens[pos]!;
  const isOp = (v: string): boolean => {
    const t = peek();
    return t.t === "op" && t.v === v;
  };
  const expectOp = (v: string): void => {
    if (!isOp(v)) throw syntaxError("invalid syntax");
    pos++;
  };
  const startsExpression = (): boolean => {
    const t = peek();
    return t.t === "num" || t.t === "str" || t.t === "name" || (t.t === "op" && EXPRESSION_STARTS.has(t.v));
  };

  // expression := factor (('+' | '-') factor)*
  const expression = (): Node => {
    let left = factor();
    while (isOp("+") || isOp("-")) {
      pos++;
      left = { n: "binop", left, right: factor() };
    }
    return left;
  };
  // factor := ('+' | '-') factor | atom
  const factor = (): Node => {
    if (isOp("+") || isOp("-")) {
      const negative = isOp("-");
      pos++;
      return { n: "unary", negative, operand: factor() };
    }
    return atom();
  };
  const atom = (): Node => {
    const t = peek();
    pos++;
    switch (t.t) {
      case "num":
        if (t.kind === "int") return { n: "const", v: { t: "int", v: t.v } };
        if (t.kind === "float") return { n: "const", v: { t: "float", v: t.v } };
        return { n: "const", v: { t: "complex" } };
      case "str":
        return stringAtom(t);
      case "name":
        if (t.v === "True" || t.v === "False") return { n: "const", v: { t: "bool", v: t.v === "True" } };
        if (t.v === "None") return { n: "const", v: { t: "none" } };
        if (t.v === "set" && isOp("(") && tokens[pos + 1]?.t === "op" && (tokens[pos + 1] as { v: string }).v === ")") {
          pos += 2;
          return { n: "emptySet" };
        }
        if (isOp("(") || isOp("[")) throw syntaxError("calls and subscripts are not literals");
        return { n: "name" };
      case "op":
        if (t.v === "...") return { n: "const", v: { t: "ellipsis" } };
        if (t.v === "(") return parenthesized();
        if (t.v === "[") {
          const items = sequence("]");
          return { n: "list", items: items.items };
        }
        if (t.v === "{") return braces();
        throw syntaxError("invalid syntax");
      default:
        throw syntaxError("invalid syntax");
    }
  };
  const stringAtom = (first: Extract<Token, { t: "str" }>): Node => {
    let text = first.bytes ? "" : first.v;
    const bytes = first.bytes ? [...first.v] : [];
    for (let t = peek(); t.t === "str"; t = peek()) {
      if (t.bytes !== first.bytes) throw syntaxError("cannot mix bytes and nonbytes literals");
      if (t.bytes) bytes.push(...t.v);
      else text += t.v;
      pos++;
    }
    return { n: "const", v: first.bytes ? { t: "bytes", v: bytes } : { t: "str", v: text } };
  };
  // Comma-separated expressions up to `close`, trailing comma allowed.
  const sequence = (close: string): { items: Node[]; comma: boolean } => {
    const items: Node[] = [];
    let comma = false;
    while (!isOp(close)) {
      items.push(expression());
      if (isOp(",")) {
        pos++;
        comma = true;
      } else break;
    }
    expectOp(close);
    return { items, comma };
  };
  const parenthesized = (): Node => {
    if (isOp(")")) {
      pos++;
      return { n: "tuple", items: [] };
    }
    const first = expression();
    if (isOp(")")) {
      pos++;
      return first;
    }
    expectOp(",");
    const rest = sequence(")");
    return { n: "tuple", items: [first, ...rest.items] };
  };
  const braces = (): Node => {
    if (isOp("}")) {
      pos++;
      return { n: "dict", keys: [], values: [] };
    }
    const first = expression();
    if (isOp(":")) {
      pos++;
      const keys = [first];
      const values = [expression()];
      while (isOp(",")) {
        pos++;
        if (isOp("}")) break;
        keys.push(expression());
        expectOp(":");
        values.push(expression());
      }
      expectOp("}");
      return { n: "dict", keys, values };
    }
    if (isOp("}")) {
      pos++;
      return { n: "set", items: [first] };
    }
    expectOp(",");
    const rest = sequence("}");
    return { n: "set", items: [first, ...rest.items] };
  };

  while (peek().t === "newline") pos++;
  if (!startsExpression()) throw syntaxError("invalid syntax");
  const first = expression();
  let result = first;
  if (isOp(",")) {
    // A bare tuple: `1, 2` or `1,`.
    const items = [first];
    while (isOp(",")) {
      pos++;
      if (!startsExpression()) break;
      items.push(expression());
    }
    result = { n: "tuple", items };
  }
  while (peek().t === "newline") pos++;
  if (peek().t !== "end") throw syntaxError("invalid syntax");
  return result;
}

// ---------------------------------------------------------------------------------------------
// literal_eval's _convert: in Python's order, so the first failure is the one Python raises.

function malformed(): Failure {
  return new Failure("ValueError", "malformed node or string");
}

function evaluate(node: Node): PyValue {
  switch (node.n) {
    case "const":
      return node.v;
    case "tuple":
    case "list":
      return { t: node.n, items: node.items.map(evaluate) };
    case "set": {
      const items: PyValue[] = [];
      for (const item of node.items) {
        const v = evaluate(item);
        requireHashable(v);
        if (!items.some((e) => pyEquals(e, v))) items.push(v);
      }
      return { t: "set", items };
    }
    case "emptySet":
      return { t: "set", items: [] };
    case "dict": {
      const keys: PyValue[] = [];
      const values: PyValue[] = [];
      const index = new Map<string, number>();
      node.keys.forEach((keyNode, i) => {
        const key = evaluate(keyNode);
        const value = evaluate(node.values[i]!);
        requireHashable(key);
        const id = hashId(key);
        const at = index.get(id);
        if (at === undefined) {
          index.set(id, keys.length);
          keys.push(key);
          values.push(value);
        } else {
          values[at] = value;
        }
      });
      return { t: "dict", keys, values };
    }
    case "binop": {
      // Only `real ± imaginary` is a literal (a complex number).
      const left = signedNumber(node.left);
      const right = plainNumber(node.right);
      if ((left.t === "int" || left.t === "float") && right.t === "complex") return { t: "complex" };
      throw malformed();
    }
    case "unary":
      return signedNumber(node);
    case "name":
      throw malformed();
  }
}

function signedNumber(node: Node): PyValue {
  if (node.n === "unary") {
    const v = plainNumber(node.operand);
    if (!node.negative) return v;
    if (v.t === "int") return { t: "int", v: -v.v };
    if (v.t === "float") return { t: "float", v: -v.v };
    return v;
  }
  return plainNumber(node);
}

/** Python's `_convert_num`, after the caller's sign: `-x` negates, `+x` keeps. */
function plainNumber(node: Node): PyValue {
  if (node.n === "const" && (node.v.t === "int" || node.v.t === "float" || node.v.t === "complex")) return node.v;
  throw malformed();
}

function requireHashable(v: PyValue): void {
  if (v.t === "list" || v.t === "dict" || v.t === "set") {
    throw new Failure("TypeError", `unhashable type: '${v.t}'`);
  }
  if (v.t === "tuple") v.items.forEach(requireHashable);
}

/** One string per class of Python-equal hashable values (`1 == 1.0 == True`). */
function hashId(v: PyValue): string {
  switch (v.t) {
    case "str":
      return `s${v.v}`;
    case "bytes":
      return `b${v.v.join(",")}`;
    case "int":
      return `n${v.v}`;
    case "bool":
      return `n${v.v ? 1 : 0}`;
    case "float":
      return Number.isInteger(v.v) ? `n${BigInt(v.v)}` : `n${v.v}`;
    case "none":
      return "none";
    case "tuple":
      return `t(${v.items.map(hashId).join("\u0000")})`;
    default:
      // complex and Ellipsis: any answer will do, they make the whole value unrepresentable.
      return `${v.t}${++uniqueIds}`;
  }
}

let uniqueIds = 0;

function pyEquals(a: PyValue, b: PyValue): boolean {
  return hashId(a) === hashId(b);
}

// ---------------------------------------------------------------------------------------------
// To JSON-like values

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function toJs(v: PyValue): unknown {
  switch (v.t) {
    case "str":
      return v.v;
    case "bytes":
      // Ansible's to_text decodes a top-level bytes value; nested bytes are decoded the same way.
      return decodeUtf8SurrogateEscape(v.v);
    case "int":
      return intToNumber(v.v);
    case "float":
      return v.v;
    case "bool":
      return v.v;
    case "none":
      return null;
    case "complex":
      throw new Failure("Unrepresentable", "complex numbers have no JSON equivalent");
    case "ellipsis":
      throw new Failure("Unrepresentable", "Ellipsis has no JSON equivalent");
    case "tuple":
    case "list":
    case "set":
      return v.items.map((item) => toJs(item));
    case "dict": {
      const out: Record<string, unknown> = {};
      v.keys.forEach((key, i) => {
        const name = jsonKey(key);
        const value = toJs(v.values[i]!);
        if (name === "__proto__") Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
        else out[name] = value;
      });
      return out;
    }
  }
}

function intToNumber(v: bigint): number {
  if (v <= MAX_SAFE && v >= -MAX_SAFE) return Number(v);
  const n = Number(v);
  if (Number.isFinite(n) && BigInt(n) === v) return n;
  throw new Failure("Unrepresentable", `the integer ${v} does not fit a double exactly`);
}

/** The key `json.dumps` writes for a Python dict key. */
function jsonKey(key: PyValue): string {
  switch (key.t) {
    case "str":
      return key.v;
    case "int":
      return key.v.toString();
    case "bool":
      return key.v ? "true" : "false";
    case "none":
      return "null";
    case "float":
      return pythonFloatRepr(key.v);
    default:
      throw new Failure("Unrepresentable", `a ${key.t} dict key has no JSON equivalent`);
  }
}

/** Python's `repr(float)` (which json.dumps uses): shortest round-trip digits, `1.0`, `1e+16`, `1e-05`. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  const [mantissa = "0", exp = "0"] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const decpt = Number(exp) + 1; // value = 0.DIGITS × 10^decpt
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${"0".repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${"0".repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const e = decpt - 1;
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}

/** Python's `bytes.decode("utf-8", "surrogateescape")`: each byte of an invalid sequence becomes U+DC80..U+DCFF. */
export function decodeUtf8SurrogateEscape(bytes: readonly number[]): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i]!;
    if (b0 < 0x80) {
      out += String.fromCharCode(b0);
      i++;
      continue;
    }
    const cp = decodeSequence(bytes, i);
    if (cp === null) {
      out += String.fromCharCode(0xdc00 + b0);
      i++;
    } else {
      out += String.fromCodePoint(cp.cp);
      i += cp.len;
    }
  }
  return out;
}

function decodeSequence(bytes: readonly number[], i: number): { cp: number; len: number } | null {
  const b0 = bytes[i]!;
  let len: number;
  let cp: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    cp = b0 & 0x1f;
    min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    cp = b0 & 0x0f;
    min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return null;
  }
  for (let k = 1; k < len; k++) {
    const b = bytes[i + k];
    if (b === undefined || (b & 0xc0) !== 0x80) return null;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
  return { cp, len };
}
