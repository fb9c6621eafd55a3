import { describe, expect, it } from "vitest";
import { ShlexError, shlexSplit, shlexTokens, sourceOffset } from "../../src/inventory/sources/shlex.js";

// Every expectation is what Python 3.11's shlex.split(s, comments=True, posix=True) returns.
describe("shlexSplit with comments (Python's shlex.split(s, comments=True))", () => {
  it.each<[string, string[]]>([
    ["", []],
    ["   ", []],
    ["a b", ["a", "b"]],
    ["  a\t b  ", ["a", "b"]],
    ["a\nb", ["a", "b"]],
    ["a\r\nb", ["a", "b"]],
    ["a#b", ["a"]],
    ["a #b c", ["a"]],
    ["#a", []],
    ["a # c\nb", ["a", "b"]],
    ["'a#b'", ["a#b"]],
    ['"a#b"', ["a#b"]],
    ["a\\#b", ["a#b"]],
    ['"a b"c', ["a bc"]],
    ['a"b c"d', ["ab cd"]],
    ["''", [""]],
    ['a "" b', ["a", "", "b"]],
    ['"\\a"', ["\\a"]],
    ['"\\""', ['"']],
    ['"\\\\"', ["\\"]],
    ["'\\'", ["\\"]],
    ["'a\\nb'", ["a\\nb"]],
    ["\\ a", [" a"]],
    ["a\\ b", ["a b"]],
    ["\\'", ["'"]],
    ["x=\"a b\" y='c d'", ["x=a b", "y=c d"]],
    ["x=a#b y=1", ["x=a"]],
    ["é ü", ["é", "ü"]],
    ["h1 a=1\u00a0b=2", ["h1", "a=1\u00a0b=2"]],
  ])("%j", (input, expected) => {
    expect(shlexSplit(input, { comments: true })).toEqual(expected);
  });
});

describe("shlexSplit without comments", () => {
  it.each<[string, string[]]>([
    ["a#b", ["a#b"]],
    ["a # b", ["a", "#", "b"]],
  ])("%j", (input, expected) => {
    expect(shlexSplit(input)).toEqual(expected);
  });
});

describe("shlex errors (Python's ValueError), with the offending offset", () => {
  it.each<[string, string, number]>([
    ['"a', "No closing quotation", 0],
    ["x='a", "No closing quotation", 2],
    ["a 'b' \"c", "No closing quotation", 6],
    ["a\\", "No escaped character", 1],
    ['"a\\', "No escaped character", 2],
  ])("%j", (input, reason, offset) => {
    let caught: unknown;
    try {
      shlexSplit(input, { comments: true });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ShlexError);
    expect((caught as ShlexError).reason).toBe(reason);
    expect((caught as ShlexError).offset).toBe(offset);
  });

  it("a quote inside a comment is not an error", () => {
    expect(shlexSplit("a # it's", { comments: true })).toEqual(["a"]);
  });
});

describe("shlexTokens positions", () => {
  it("records where each token starts and where each character came from", () => {
    const tokens = shlexTokens('h1  x="a b" \\y=1', { comments: true });
    expect(tokens.map((t) => [t.value, t.start])).toEqual([
      ["h1", 0],
      ["x=a b", 4],
      ["y=1", 12],
    ]);
    expect(tokens[1]!.offsets).toEqual([4, 5, 7, 8, 9]);
    expect(tokens[2]!.offsets).toEqual([13, 14, 15]);
  });

  it("maps characters of a verbatim token to the input by its start", () => {
    const [, token] = shlexTokens("h1   x=1 # c", { comments: true });
    expect(token).toMatchObject({ value: "x=1", start: 5 });
    expect([0, 1, 2, 3].map((i) => sourceOffset(token!, i))).toEqual([5, 6, 7, 8]);
  });

  it("keeps the backslash of an unknown escape inside double quotes at its own offset", () => {
    const [token] = shlexTokens('"\\a"');
    expect(token!.value).toBe("\\a");
    expect(token!.offsets).toEqual([1, 2]);
  });
});
