import { Args } from "@oclif/core";
import { RelayCommand, UsageError } from "./base.js";

/** What completes after each command path: "" is the first word, "hook" the words after it, "hook install" its flags. */
export type CompletionTable = Map<string, string[]>;

export function completionTable(commands: readonly { id: string; hidden?: boolean; flags?: Record<string, { hidden?: boolean; char?: string }> }[]): CompletionTable {
  const table: CompletionTable = new Map();
  const add = (path: string, word: string) => {
    const words = table.get(path) ?? [];
    if (!words.includes(word)) words.push(word);
    table.set(path, words);
  };
  for (const c of commands) {
    if (c.hidden) continue;
    const parts = c.id.split(":");
    parts.forEach((part, i) => add(parts.slice(0, i).join(" "), part));
    const flags = Object.entries(c.flags ?? {}).filter(([, f]) => !f.hidden);
    table.set(parts.join(" "), [...(table.get(parts.join(" ")) ?? []), ...flags.map(([name]) => `--${name}`), "--help"]);
  }
  for (const words of table.values()) words.sort();
  return table;
}

/** A bash completion function over the table: the command words typed so far pick the candidates. */
export function bashScript(table: CompletionTable, bin = "relay"): string {
  const fn = `_${bin.replace(/[^A-Za-z0-9_]/g, "_")}_complete`;
  const full = [...table.keys()].filter((k) => k !== "" && !(table.get(k) ?? []).some((w) => !w.startsWith("-")));
  const cases = [...table.entries()].map(([path, words]) => `    "${path}") words="${words.join(" ")}" ;;`);
  return [
    `# ${bin} completion for bash (zsh: ${bin} autocomplete zsh). Add to ~/.bashrc:  source <(${bin} autocomplete bash)`,
    `${fn}() {`,
    '  local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" i words=""',
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    '    case "${COMP_WORDS[i]}" in -*) continue ;; esac',
    `    case "|${full.join("|")}|" in *"|$cmd|"*) [ -n "$cmd" ] && break ;; esac`,
    '    cmd="${cmd:+$cmd }${COMP_WORDS[i]}"',
    "  done",
    '  case "$cmd" in',
    ...cases,
    "  esac",
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    "}",
    `complete -o default -F ${fn} ${bin}`,
    "",
  ].join("\n");
}

export default class Autocomplete extends RelayCommand {
  static override summary = "Print a shell completion script for relay's commands and flags (bash or zsh).";
  static override description = [
    "The script is made from the command list of this relay, so it completes exactly the commands and flags it has.",
    "zsh runs the same function through bashcompinit.",
  ].join("\n");
  static override examples = [
    { description: "bash: complete in every new shell", command: "echo 'source <(relay autocomplete bash)' >> ~/.bashrc" },
    { description: "zsh", command: "echo 'source <(relay autocomplete zsh)' >> ~/.zshrc" },
  ];
  static override args = { shell: Args.string({ ignoreStdin: true, description: "the shell (default: from $SHELL, else bash)", options: ["bash", "zsh"] }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Autocomplete);
    const shell = args.shell ?? (/zsh$/.test(process.env.SHELL ?? "") ? "zsh" : "bash");
    if (shell !== "bash" && shell !== "zsh") throw new UsageError(`autocomplete: expected bash or zsh, got ${shell}`);
    const script = bashScript(completionTable(this.config.commands), this.config.bin);
    this.log((shell === "zsh" ? `autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n${script}` : script).trimEnd());
  }
}
