import { describe, expect, it } from "vitest";
import {
  decodeUtf8SurrogateEscape,
  literalEval,
  parseIniValue,
  PythonLiteralError,
  pythonFloatRepr,
  UnrepresentableLiteral,
} from "../../src/inventory/sources/pythonLiteral.js";

// Each expectation is what Ansible 2.14's InventoryModule._parse_value returns under CPython 3.11
// (ast.literal_eval, the text itself on ValueError/SyntaxError), mapped to JSON-like values:
// tuples and sets become arrays, dict keys are written as json.dumps writes them.
const TEXT = Symbol("the text itself");

const cases: Array<[string, unknown]> = [
  // ints
  ["1", 1],
  ["-1", -1],
  ["+1", 1],
  ["- 1", -1],
  ["-(1)", -1],
  ["(-1)", -1],
  ["0x10", 16],
  ["0X_1f", 31],
  ["0o17", 15],
  ["0b101", 5],
  ["1_000", 1000],
  ["00", 0],
  ["0_0", 0],
  ["-0x10", -16],
  ["9007199254740992", 9007199254740992],
  ["18446744073709551616", 18446744073709551616],
  ["9007199254740993", TEXT],
  ["-9007199254740993", TEXT],
  ["012", TEXT],
  ["09", TEXT],
  ["1__0", TEXT],
  ["1_", TEXT],
  ["0x", TEXT],
  ["0b", TEXT],
  ["-(-1)", TEXT],
  ["--1", TEXT],
  ["~1", TEXT],
  ["1+2", TEXT],
  ["2**3", TEXT],
  // floats
  ["1.5", 1.5],
  ["1.", 1],
  [".5", 0.5],
  ["1.e5", 100000],
  ["1e3", 1000],
  ["1E+5", 100000],
  ["1e-5", 0.00001],
  ["1_0.0_1e1_0", 100100000000],
  ["09.5", 9.5],
  ["0_1.5", 1.5],
  ["1e999", Infinity],
  ["-1e999", -Infinity],
  ["-0.0", -0],
  ["inf", TEXT],
  ["nan", TEXT],
  ["1e", TEXT],
  ["1.5.5", TEXT],
  // complex numbers and Ellipsis have no JSON form: the text is kept
  ["1j", TEXT],
  ["1+2j", TEXT],
  ["[1j]", TEXT],
  ["...", TEXT],
  // True/False/None, and look-alikes that stay text
  ["True", true],
  ["False", false],
  ["None", null],
  ["True ", true],
  [" \tTrue", true],
  ["True # comment", true],
  ["true", TEXT],
  ["yes", TEXT],
  ["null", TEXT],
  ["Truex", TEXT],
  ["+True", TEXT],
  // strings
  ["'a'", "a"],
  ['"a"', "a"],
  ["''", ""],
  ["'a' 'b'", "ab"],
  ["'a''b'", "ab"],
  ["u'a' \"b\"", "ab"],
  ["r'a\\n'", "a\\n"],
  ["R'a\\n'", "a\\n"],
  ["r'\\''", "\\'"],
  ["'''a'b'''", "a'b"],
  ['"""a"b"""', 'a"b'],
  ["''''a'''", "'a"],
  ["'\\n\\t'", "\n\t"],
  ["'\\t\\r\\a\\b\\f\\v\\0'", "\t\r\x07\b\f\v\0"],
  ["'\\x41'", "A"],
  ["'\\101'", "A"],
  ["'\\777'", "\u01ff"],
  ["'\\u00e9'", "é"],
  ["'\\U0001F600'", "😀"],
  ["'\\d'", "\\d"],
  ["'\\\\'", "\\"],
  ["'\\''", "'"],
  ["'é'", "é"],
  ["'a # b'", "a # b"],
  ["'a", TEXT],
  ["'a\\'", TEXT],
  ["r'\\'", TEXT],
  ["'''a''''", TEXT],
  ["'\\x4'", TEXT],
  ["'\\U00110000'", TEXT],
  ["ur'a'", TEXT],
  ["f'a'", TEXT],
  ["'a' b'b'", TEXT],
  // \N{...} needs Unicode's name table, which Node lacks: the text is kept (Python gives "•")
  ["'\\N{BULLET}'", TEXT],
  // bytes are decoded as UTF-8, as Ansible's to_text does
  ["b'a'", "a"],
  ["B'a'", "a"],
  ["rb'a\\x00'", "a\\x00"],
  ["Rb'x'", "x"],
  ["b'\\xc3\\xa9'", "é"],
  ["b'\\x41'", "A"],
  ["b'\\777'", "\udcff"],
  ["b'\\400'", "\0"],
  ["b'\\xff'", "\udcff"],
  ["b'\\xe2\\x82'", "\udce2\udc82"],
  ["b'\\u1234'", "\\u1234"],
  ["b'é'", TEXT],
  ["b'\\x'", TEXT],
  // lists, tuples, sets
  ["[]", []],
  ["[1,2]", [1, 2]],
  ["[1, 2 ,3]", [1, 2, 3]],
  ["[1,]", [1]],
  ["()", []],
  ["(1)", 1],
  ["(1,)", [1]],
  ["( 1 , )", [1]],
  ["(1,2)", [1, 2]],
  ["((1))", 1],
  ["1,", [1]],
  ["1,2", [1, 2]],
  ["1, 2,", [1, 2]],
  ["{1}", [1]],
  ["{1,}", [1]],
  ["{1, 1}", [1]],
  ["{1, True, 1.0}", [1]],
  ["set()", []],
  ["set ()", []],
  ["[1, 'a', 2.5, None, True, (1,), {'k': b'v'}]", [1, "a", 2.5, null, true, [1], { k: "v" }]],
  ["[1 2]", TEXT],
  ["[,]", TEXT],
  ["(,)", TEXT],
  ["1,,", TEXT],
  ["set([1])", TEXT],
  ["[*[1]]", TEXT],
  ["[".repeat(200) + "]".repeat(200), nested(200)],
  ["[".repeat(201) + "]".repeat(201), TEXT],
  // dicts
  ["{}", {}],
  ["{'a': 1}", { a: 1 }],
  ["{'a': 1, 'b': [1, {'c': None}]}", { a: 1, b: [1, { c: null }] }],
  ["{1:2,}", { "1": 2 }],
  ["{'a':1,'b':2,'a':3}", { a: 3, b: 2 }],
  ["{1:'a',True:'b'}", { "1": "b" }],
  ["{1:'a',True:'b',1.5:'c',None:'d'}", { "1": "b", "1.5": "c", null: "d" }],
  ["{False: 1}", { false: 1 }],
  ["{-0.0: 1, 0: 2}", { "-0.0": 2 }],
  ["{1e16: 1}", { "1e+16": 1 }],
  ["{1e-5: 1}", { "1e-05": 1 }],
  ["{'__proto__': 1}", JSON.parse('{"__proto__": 1}')],
  ["{(1,2):'a'}", TEXT],
  ["{b'a': 1}", TEXT],
  ["{,}", TEXT],
  ["{1:2, 3}", TEXT],
  ["{'a': 1, **{}}", TEXT],
  ["{x: [1]}", TEXT],
  // anything else Python refuses stays the text
  ["a b # c", TEXT],
  ["foo", TEXT],
  ["deploy_user", TEXT],
  ["eu-west-1", TEXT],
  ["a-1", TEXT],
  ["True-1", TEXT],
  ["10.0.0.1", TEXT],
  ["1.2.3", TEXT],
  ["123456789012345", 123456789012345],
  ["-0", 0],
  ["foo.bar", TEXT],
  ["1 if 1 else 2", TEXT],
  ["", TEXT],
  [" ", TEXT],
  ["#", TEXT],
  ["1\u00a0", TEXT],
  ["1\x00", TEXT],
  ["$1", TEXT],
  // line breaks behave as in Python (the ini plugin never passes any)
  ["[1,\n2]", [1, 2]],
  ["\n1", 1],
  ["1\n", 1],
  ["1\n2", TEXT],
  ["1\n ", TEXT],
  ["1\n #c", 1],
  ["1\\\n", TEXT],
  ["\f\t0", TEXT],
];

function nested(depth: number): unknown {
  let v: unknown = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}

describe("parseIniValue (Ansible's _parse_value)", () => {
  it.each(cases)("%j", (text, expected) => {
    const value = parseIniValue(text);
    if (expected === TEXT) expect(value).toBe(text);
    else expect(value).toStrictEqual(expected);
  });

  it("makes dicts plain objects that own a __proto__ key instead of changing their prototype", () => {
    const value = parseIniValue("{'__proto__': {'x': 1}}") as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(["__proto__"]);
    expect((value as { x?: unknown }).x).toBeUndefined();
  });
});

describe("TypeError: what makes Ansible fail the whole file", () => {
  it.each<[string, string]>([
    ["{[1]: 2}", "unhashable type: 'list'"],
    ["{{}: 2}", "unhashable type: 'dict'"],
    ["{set(): 1}", "unhashable type: 'set'"],
    ["{(1, [2]): 3}", "unhashable type: 'list'"],
    ["{[1]}", "unhashable type: 'list'"],
    ["[{[1]: 2}]", "unhashable type: 'list'"],
  ])("%j", (text, message) => {
    expect(() => parseIniValue(text)).toThrow(new PythonLiteralError("TypeError", message));
  });

  it("a ValueError met first wins, as in Python (keys and values are converted pair by pair)", () => {
    expect(parseIniValue("{x: 1, [1]: 2}")).toBe("{x: 1, [1]: 2}");
    expect(parseIniValue("{[1]: x}")).toBe("{[1]: x}");
  });
});

describe("literalEval errors", () => {
  it.each<[string, string]>([
    ["foo", "ValueError"],
    ["1 +", "SyntaxError"],
    ["'a", "SyntaxError"],
  ])("%j raises %s", (text, kind) => {
    expect(() => literalEval(text)).toThrow(expect.objectContaining({ kind }));
  });

  it("reports literals with no JSON form as unrepresentable", () => {
    expect(() => literalEval("1j")).toThrow(UnrepresentableLiteral);
    expect(() => literalEval("9007199254740993")).toThrow(UnrepresentableLiteral);
  });
});

describe("pythonFloatRepr (repr(float), as json.dumps writes dict keys)", () => {
  it.each<[number, string]>([
    [1, "1.0"],
    [1.5, "1.5"],
    [-0, "-0.0"],
    [0.1, "0.1"],
    [1e15, "1000000000000000.0"],
    [1e16, "1e+16"],
    [1.5e16, "1.5e+16"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [123.456, "123.456"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [Infinity, "Infinity"],
  ])("%d", (x, expected) => {
    expect(pythonFloatRepr(x)).toBe(expected);
  });
});

describe("decodeUtf8SurrogateEscape (bytes.decode('utf-8', 'surrogateescape'))", () => {
  it.each<[number[], string]>([
    [[0x61], "a"],
    [[0xc3, 0xa9], "é"],
    [[0xf0, 0x9f, 0x98, 0x80], "😀"],
    [[0xff], "\udcff"],
    [[0xc0, 0x80], "\udcc0\udc80"],
    [[0xed, 0xa0, 0x80], "\udced\udca0\udc80"],
    [[0xe2, 0x82, 0x41], "\udce2\udc82A"],
  ])("%j", (bytes, expected) => {
    expect(decodeUtf8SurrogateEscape(bytes)).toBe(expected);
  });
});
