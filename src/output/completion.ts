import type { Argument, Command, Option } from "commander";

/**
 * Shell completion scripts generated from the commander program itself — its subcommands, their
 * options and arguments, option choices — so a new command or option completes without anyone
 * editing a script. Pure: the program in, the script's text out.
 */

export type Shell = "bash" | "zsh";
export const SHELLS: readonly Shell[] = ["bash", "zsh"];

/** What a word may complete to. */
export type Values =
  | { kind: "none" } // free text (a number, a pattern, a host name): nothing to offer
  | { kind: "files" }
  | { kind: "dirs" }
  | { kind: "choices"; choices: readonly string[] }
  | { kind: "commands" }; // the names of the parent's subcommands (`help [command]`)

export interface OptionSpec {
  short?: string;
  long?: string;
  description: string;
  /** The value's name as help shows it (`<file>` → file); undefined for a flag. */
  valueName?: string;
  /** A value must follow (`<x>`) or may follow (`[x]`). */
  value: "none" | "required" | "optional";
  values: Values;
  /** Given more than once (an array default or a variadic value): `-i a -i b`. */
  repeatable: boolean;
}

export interface ArgumentSpec {
  name: string;
  required: boolean;
  variadic: boolean;
  values: Values;
}

export interface CommandSpec {
  /** The words from the program to this command: [] for the program itself, ["plan"] for `provision plan`. */
  path: string[];
  name: string;
  aliases: string[];
  description: string;
  options: OptionSpec[];
  arguments: ArgumentSpec[];
  commands: CommandSpec[];
}

export function completionScript(program: Command, shell: Shell): string {
  const spec = describeCommand(program, []);
  switch (shell) {
    case "bash":
      return bashScript(spec);
    case "zsh":
      return zshScript(spec);
    default:
      throw new Error(`no completion for shell ${JSON.stringify(shell)}; choose one of ${SHELLS.join(", ")}`);
  }
}

/** The program as data: what help shows (hidden commands and options left out), plus value kinds. */
export function describeCommand(cmd: Command, path: string[]): CommandSpec {
  const help = cmd.createHelp();
  const commands = help.visibleCommands(cmd).map((sub) => describeCommand(sub, [...path, sub.name()]));
  return {
    path,
    name: cmd.name(),
    aliases: cmd.aliases(),
    description: oneLine(cmd.description()),
    options: help.visibleOptions(cmd).map(describeOption),
    // The implicit `help` command has no action of its own; its argument names a sibling command.
    arguments: cmd.registeredArguments.map(describeArgument),
    commands,
  };
}

function describeOption(option: Option): OptionSpec {
  const valueName = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1]?.replace(/\.\.\.$/, "");
  const value = option.required ? "required" : option.optional ? "optional" : "none";
  return {
    ...(option.short ? { short: option.short } : {}),
    ...(option.long ? { long: option.long } : {}),
    description: oneLine(option.description),
    ...(valueName !== undefined ? { valueName } : {}),
    value,
    values: value === "none" ? { kind: "none" } : valuesFor(valueName ?? "", option.argChoices),
    repeatable: option.variadic || Array.isArray(option.defaultValue),
  };
}

function describeArgument(argument: Argument): ArgumentSpec {
  return {
    name: argument.name(),
    required: argument.required,
    variadic: argument.variadic,
    values: valuesFor(argument.name(), argument.argChoices),
  };
}

/**
 * A value's completions, from its choices or else from the name it is given in help: a file, an
 * inventory source or a run record completes to paths, a directory to directories, a command to
 * the sibling commands; anything else (a number, a pattern, a host) to nothing.
 */
export function valuesFor(name: string, choices: readonly string[] | undefined): Values {
  if (choices && choices.length > 0) return { kind: "choices", choices: [...choices] };
  const n = name.toLowerCase();
  if (/dir(ectory)?$/.test(n)) return { kind: "dirs" };
  if (/(file|path|source|inventory|record|playbook)s?$/.test(n)) return { kind: "files" };
  if (n === "command") return { kind: "commands" };
  return { kind: "none" };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function flags(o: OptionSpec): string[] {
  return [o.short, o.long].filter((f): f is string => f !== undefined);
}

function allCommands(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.commands.flatMap(allCommands)];
}

/** A word the scripts embed unquoted (in case patterns and compgen -W lists): refused unless plain. */
function plainWord(word: string): string {
  if (!/^[A-Za-z0-9_.,:+@%/=-]+$/.test(word) || word.startsWith("="))
    throw new Error(
      `completion: ${JSON.stringify(word)} cannot be completed safely (only letters, digits and _.,:+@%/=-)`,
    );
  return word;
}

// ---------------------------------------------------------------------------------------------- bash

function bashScript(root: CommandSpec): string {
  const fn = `_${identifier(root.name)}`;
  const all = allCommands(root);
  const key = (c: CommandSpec) => plainWords(c.path).join(" ");
  const arm = (pattern: string, body: string) => `    "${pattern}") ${body} ;;`;

  const subcommandArms = all
    .filter((c) => c.commands.length > 0)
    .map((c) => arm(key(c), `echo "${c.commands.map((s) => plainWord(s.name)).join(" ")}"`));
  const resolveArms = all.flatMap((c) =>
    c.commands.flatMap((s) =>
      [s.name, ...s.aliases].map((word) => arm(`${key(c)}|${plainWord(word)}`, `echo "${plainWord(s.name)}"`)),
    ),
  );
  const optionArms = all.map((c) => arm(key(c), `echo "${c.options.flatMap(flags).map(plainWord).join(" ")}"`));
  /** One arm per command and body: the patterns of every option that shares it. */
  const groupedArms = (c: CommandSpec, body: (o: OptionSpec) => string | undefined): string[] => {
    const byBody = new Map<string, string[]>();
    for (const o of c.options) {
      const b = body(o);
      if (b !== undefined)
        byBody.set(b, [...(byBody.get(b) ?? []), ...flags(o).map((f) => `${key(c)}|${plainWord(f)}`)]);
    }
    return [...byBody].map(([b, patterns]) => arm(patterns.join(`"|"`), b));
  };
  const kindArms = all.flatMap((c) => groupedArms(c, (o) => (o.value === "none" ? undefined : `echo ${o.value}`)));
  const bashValues = (values: Values, parent: CommandSpec): string => {
    switch (values.kind) {
      case "files":
        return `${fn}_values files "$3"`;
      case "dirs":
        return `${fn}_values dirs "$3"`;
      case "choices":
        return `${fn}_values words "$3" "${values.choices.map(plainWord).join(" ")}"`;
      case "commands":
        return `${fn}_values words "$3" "${parent.commands.map((s) => plainWord(s.name)).join(" ")}"`;
      case "none":
        return "return 1";
    }
  };
  const parentOf = (c: CommandSpec) => all.find((p) => p.commands.includes(c)) ?? root;
  const valueArms = all.flatMap((c) =>
    groupedArms(c, (o) => (o.value === "none" || o.values.kind === "none" ? undefined : bashValues(o.values, c))),
  );
  const argumentArms = all
    .filter((c) => c.arguments.length > 0)
    .map((c) => {
      const tests = c.arguments.map((a, i) => {
        const test = a.variadic ? `$2 >= ${i}` : `$2 == ${i}`;
        return `if ((${test})); then ${bashValues(a.values, parentOf(c))}; fi`;
      });
      return arm(key(c), tests.join("; "));
    });

  return `# bash completion for ${root.name}, generated by \`${root.name} completion bash\` from the program itself.
# Install: ${root.name} completion bash > /etc/bash_completion.d/${root.name}
#      or: ${root.name} completion bash > ~/.local/share/bash-completion/completions/${root.name}
#      or, in ~/.bashrc: source <(${root.name} completion bash)

# $1: files | dirs | words; $2: the word being completed; $3: the words (for "words").
${fn}_values() {
  case $1 in
    files)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$2") ;;
    dirs)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -d -- "$2") ;;
    words) mapfile -t COMPREPLY < <(compgen -W "$3" -- "$2") ;;
  esac
}

# The subcommands of a command ($1: the words that name it, "" for ${root.name} itself).
${fn}_subcommands() {
  case "$1" in
${subcommandArms.join("\n")}
  esac
}

# The subcommand a word names under a command (an alias gives its command), or nothing.
${fn}_resolve() {
  case "$1|$2" in
${resolveArms.join("\n")}
  esac
}

${fn}_options() {
  case "$1" in
${optionArms.join("\n")}
  esac
}

# Whether an option of a command takes a value: required, optional, or nothing (a flag).
${fn}_option_kind() {
  case "$1|$2" in
${kindArms.join("\n")}
  esac
}

# Completes the value of an option ($1 command, $2 option, $3 word); status 1 when it is free text.
${fn}_option_values() {
  COMPREPLY=()
  case "$1|$2" in
${valueArms.join("\n")}
    *) return 1 ;;
  esac
}

# Completes a command's argument ($1 command, $2 its index among the arguments, $3 word).
${fn}_argument_values() {
  COMPREPLY=()
  case "$1" in
${argumentArms.join("\n")}
  esac
  return 0
}

${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" cmd="" sub="" kind="" valopt="" optional="" w="" next=""
  local -i i=1 pos=0 dashdash=0
  COMPREPLY=()
  # Walk the words before the cursor: the subcommand, the options (skipping their values), the arguments.
  while ((i < COMP_CWORD)); do
    w="\${COMP_WORDS[i]}"
    next="\${COMP_WORDS[i + 1]}"
    if ((!dashdash)) && [[ $w == -?* ]]; then
      if [[ $w == -- ]]; then
        dashdash=1
      else
        kind="$(${fn}_option_kind "$cmd" "$w")"
        if [[ -n $kind && $next == "=" ]]; then
          # --option=value: bash splits the word at "=" (COMP_WORDBREAKS).
          if ((i + 1 == COMP_CWORD)); then valopt="$w" cur=""; break; fi
          if ((i + 2 == COMP_CWORD)); then valopt="$w"; break; fi
          i+=2
        elif [[ $kind == required || ($kind == optional && $next != -*) ]]; then
          if ((i + 1 == COMP_CWORD)); then
            valopt="$w"
            [[ $kind == optional ]] && optional=1
            break
          fi
          i+=1
        fi
      fi
    elif ((pos == 0)) && sub="$(${fn}_resolve "$cmd" "$w")" && [[ -n $sub ]]; then
      cmd="\${cmd:+$cmd }$sub"
    else
      pos+=1
    fi
    i+=1
  done

  if [[ -n $valopt ]]; then
    ${fn}_option_values "$cmd" "$valopt" "$cur" && return 0
    [[ -n $optional ]] || return 0
  fi
  if [[ $cur == -* ]] && ((!dashdash)); then
    mapfile -t COMPREPLY < <(compgen -W "$(${fn}_options "$cmd")" -- "$cur")
    return 0
  fi
  local subcommands
  subcommands="$(${fn}_subcommands "$cmd")"
  if ((pos == 0)) && [[ -n $subcommands ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$subcommands" -- "$cur")
    return 0
  fi
  ${fn}_argument_values "$cmd" "$pos" "$cur"
}

complete -F ${fn} ${plainWord(root.name)}
`;
}

function plainWords(words: string[]): string[] {
  return words.map(plainWord);
}

/** A shell function name from a command's words: `provision` → `provision`, `a-b` → `a_b`. */
function identifier(word: string): string {
  return plainWord(word).replace(/[^A-Za-z0-9_]/g, "_");
}

// ----------------------------------------------------------------------------------------------- zsh

/** Inside single quotes, as _arguments reads a spec: `'` closes the quote; `[`, `]`, `:` and `\` are its syntax. */
function zshQuoted(text: string): string {
  return text.replace(/'/g, `'\\''`);
}

function zshDescription(text: string): string {
  return zshQuoted(text.replace(/[\\[\]]/g, (c) => `\\${c}`));
}

function zshMessage(text: string): string {
  return zshQuoted(text.replace(/[\\:]/g, (c) => `\\${c}`));
}

function zshFunction(c: CommandSpec, rootName: string): string {
  return `_${[rootName, ...c.path].map(identifier).join("_")}`;
}

function zshAction(values: Values, parent: CommandSpec | undefined, rootName: string): string {
  switch (values.kind) {
    case "files":
      return "_files";
    case "dirs":
      return "_files -/";
    case "choices":
      return `(${values.choices.map(plainWord).join(" ")})`;
    case "commands":
      return parent ? `${zshFunction(parent, rootName)}_commands` : " ";
    case "none":
      return " ";
  }
}

function zshOptionSpecs(c: CommandSpec, parent: CommandSpec | undefined, rootName: string): string[] {
  return c.options.flatMap((o) => {
    const names = flags(o);
    const exclusive = o.repeatable ? "*" : names.length > 1 ? `(${names.join(" ")})` : "";
    const description = `[${zshDescription(o.description)}]`;
    const value =
      o.value === "none"
        ? ""
        : `${o.value === "optional" ? "::" : ":"}${zshMessage(o.valueName ?? "value")}:${zshAction(o.values, parent, rootName)}`;
    return names.map((name) => {
      // `--opt=` takes `--opt value` and `--opt=value`; an optional value has no `=`, which zsh would insert.
      const form = o.value === "none" || o.value === "optional" ? "" : name.startsWith("--") ? "=" : "+";
      return `'${exclusive}${plainWord(name)}${form}${description}${value}'`;
    });
  });
}

function zshCommandFunctions(c: CommandSpec, parent: CommandSpec | undefined, rootName: string): string[] {
  const fn = zshFunction(c, rootName);
  const options = zshOptionSpecs(c, parent, rootName);
  if (c.commands.length > 0) {
    const described = c.commands.map(
      (s) => `    '${zshQuoted(plainWord(s.name).replace(/:/g, "\\:"))}:${zshQuoted(s.description)}'`,
    );
    const dispatch = c.commands.map(
      (s) => `      ${[s.name, ...s.aliases].map(plainWord).join("|")}) ${zshFunction(s, rootName)} && ret=0 ;;`,
    );
    const own = [
      `${fn}_commands() {
  local -a commands=(
${described.join("\n")}
  )
  _describe -t commands '${zshMessage([rootName, ...c.path].join(" "))} command' commands
}`,
      `${fn}() {
  local curcontext="$curcontext" state state_descr line ret=1
  typeset -A opt_args
  _arguments -C -s -S \\
${[...options, `'1: :${fn}_commands'`, `'*:: :->command'`].map((s) => `    ${s}`).join(" \\\n")} && ret=0
  if [[ $state == command ]]; then
    curcontext="\${curcontext%:*:*}:${identifier(rootName)}-$words[1]:"
    case $words[1] in
${dispatch.join("\n")}
    esac
  fi
  return ret
}`,
    ];
    return [...own, ...c.commands.flatMap((s) => zshCommandFunctions(s, c, rootName))];
  }
  const args = c.arguments.map((a) => {
    const message = zshMessage(a.name);
    const action = zshAction(a.values, parent, rootName);
    return a.variadic
      ? `'*:${message}:${action}'`
      : a.required
        ? `':${message}:${action}'`
        : `'::${message}:${action}'`;
  });
  const specs = [...options, ...args];
  return [
    `${fn}() {
  _arguments -s -S${specs.length > 0 ? " \\\n" : ""}${specs.map((s) => `    ${s}`).join(" \\\n")}
}`,
  ];
}

function zshScript(root: CommandSpec): string {
  const name = plainWord(root.name);
  const fn = zshFunction(root, name);
  return `#compdef ${name}
# zsh completion for ${name}, generated by \`${name} completion zsh\` from the program itself.
# Install: ${name} completion zsh > ~/.zfunc/_${name}   (with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc)
#      or, in ~/.zshrc after compinit: source <(${name} completion zsh)

${zshCommandFunctions(root, undefined, name).join("\n\n")}

if [[ $funcstack[1] == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`;
}
