import { resolve } from "node:path";
import { Args, Flags } from "@oclif/core";
import type { InitOutcome } from "../config/init-root.js";
import { RelayCommand, UsageError } from "./base.js";

export interface InitResult extends InitOutcome {
  ready: boolean;
  /** the ntfy URL to subscribe to, and JC's private reply topic */
  topicUrl: string;
  replyUrl: string;
  next: string[];
  warnings: string[];
}

export default class Init extends RelayCommand {
  static override summary = "Make DIR (default: the root) a ready relay root: config.yaml, .env with the ntfy topics and the key, the directories.";
  static override description = [
    "Creates DIR if needed, config.yaml with commented defaults, .env (mode 0600) with both ntfy topics generated, and queue/, dispatch/, state/, logs/.",
    "In a terminal it asks for the Anthropic API key without echoing it (Enter skips); elsewhere --key-from-env saves $ANTHROPIC_API_KEY.",
    "It never overwrites: an existing file or .env value is kept and listed as kept; on a ready root it changes nothing and says so.",
  ].join("\n");
  static override examples = [
    { description: "A root of its own, asking for the key", command: "<%= config.bin %> init ~/relay" },
    { description: "Non-interactive (a script, a container): the key from the environment", command: "ANTHROPIC_API_KEY=sk-ant-... <%= config.bin %> init ~/relay --key-from-env" },
    { description: "The current directory (or --root, or $RELAY_ROOT)", command: "<%= config.bin %> init" },
  ];
  static override enableJsonFlag = true;
  static override args = { dir: Args.string({ ignoreStdin: true, description: "the directory to make a root (default: --root, $RELAY_ROOT, else the current directory)" }) };
  static override flags = {
    "key-from-env": Flags.boolean({ description: "save $ANTHROPIC_API_KEY into .env (when .env has no key yet) instead of asking" }),
  };

  async run(): Promise<InitResult> {
    const { args, flags } = await this.parse(Init);
    const paths = args.dir === undefined ? this.resolvePaths(flags.root) : this.resolvePaths(resolve(args.dir));
    const [{ initRoot, keyInEnvFile }, { loadConfig, loadEnv, ConfigError }, { askSecret }] = await Promise.all([
      import("../config/init-root.js"),
      import("../config/config.js"),
      import("./ask-secret.js"),
    ]);
    const warnings: string[] = [];
    let key: string | undefined;
    const keyThere = await keyInEnvFile(paths).catch(() => undefined);
    if (flags["key-from-env"]) {
      key = process.env.ANTHROPIC_API_KEY?.trim() || undefined;
      if (key === undefined) throw new UsageError("--key-from-env: ANTHROPIC_API_KEY is not set in the environment");
      if (keyThere !== undefined && keyThere !== key) warnings.push(`kept the key already in ${paths.env} (init never overwrites; edit .env to change it)`);
    } else if (keyThere === undefined && process.stdin.isTTY) {
      key = (await askSecret("Anthropic API key (input hidden; Enter to skip, --dry-run needs none): "))?.trim() || undefined;
    }

    const outcome = await initRoot(paths, key === undefined ? {} : { key });
    let server = "https://ntfy.sh";
    try {
      server = (await loadConfig(paths, process.env, { seed: false, keepCopy: false })).ntfy.server;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      warnings.push(`${err.message} (kept as it is: fix it before relay run)`);
      server = ((await loadEnv(paths, process.env)).NTFY_SERVER ?? server).replace(/\/+$/, "");
    }
    const root = paths.root;
    const next = [`relay run --dry-run --root ${root}`, `relay doctor --root ${root}`, `relay run --root ${root}`];
    const result: InitResult = { ...outcome, ready: outcome.created.length === 0, topicUrl: `${server}/${outcome.topic}`, replyUrl: `${server}/${outcome.replyTopic}`, next, warnings };
    for (const w of warnings) this.logToStderr(`relay: note: ${w}`);
    if (!this.jsonEnabled()) for (const line of formatInit(result)) this.log(line);
    return result;
  }
}

export function formatInit(r: InitResult): string[] {
  const keyLine = {
    saved: `key:     saved in ${r.root}/.env`,
    kept: `key:     already in ${r.root}/.env`,
    absent: `key:     not set yet: add ANTHROPIC_API_KEY=sk-ant-... to ${r.root}/.env, or run relay init ${r.root} --key-from-env (the dry run needs none)`,
  }[r.key];
  const width = Math.max(...r.next.map((c) => c.length));
  const step = (i: number, why: string) => `  ${(r.next[i] ?? "").padEnd(width)}   ${why}`;
  return [
    r.ready ? `${r.root} is already a relay root: nothing changed` : `relay root: ${r.root}`,
    ...(r.created.length > 0 ? [`created: ${r.created.join(", ")}`] : []),
    ...(r.kept.length > 0 && !r.ready ? [`kept:    ${r.kept.join(", ")} (left as they were)`] : []),
    keyLine,
    "",
    "ntfy: subscribe to this topic in the ntfy app (the topic is its password: keep it private)",
    `  ${r.topicUrl}`,
    "JC's reply topic (the notifications' buttons publish here; keep it private too)",
    `  ${r.replyUrl}`,
    "",
    "next:",
    step(0, "try it: a fixed acknowledgement, no API call, a history of its own"),
    step(1, "check the set-up: key, model, API, ntfy, hooks, service"),
    step(2, "the real run (relay service install keeps it running)"),
  ];
}
