import { access, mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { DEFAULT_WAIT_S } from "../../claude-code/defaults.js";
import type { HookSpec, relayHooks } from "../../claude-code/hook.js";
import type { RelayPaths } from "../../config/paths.js";
import { SESSION_ID } from "../../config/session-id.js";
import { RelayCommand, UsageError } from "../base.js";

export async function readSettingsText(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const { isErrno } = await import("../../store/files.js");
    if (isErrno(err, "ENOENT")) return null;
    if (isErrno(err, "EISDIR")) throw new UsageError(`${path} is a directory, not a settings file`);
    throw err;
  }
}

export async function projectDir(project: string | undefined): Promise<string> {
  const dir = resolve(project ?? process.cwd());
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new UsageError(`${dir} is not a directory (--project names the Claude Code project)`);
  return dir;
}

export function checkSession(session: string): void {
  if (!SESSION_ID.test(session)) throw new UsageError(`${JSON.stringify(session)} is not a valid session id (${SESSION_ID.source})`);
}

/** The session must be one the relay knows, or every relayed message would be refused. */
async function checkConfigured(paths: RelayPaths, session: string, warn: (line: string) => void): Promise<void> {
  const present = await access(paths.config).then(() => true, () => false);
  if (!present) {
    warn(`relay: note: ${paths.config} does not exist yet; \`relay run\` creates it: add session ${session} to its sessions`);
    return;
  }
  const { loadConfig } = await import("../../config/config.js");
  const config = await loadConfig(paths, process.env, { seed: false });
  if (!config.sessions.some((s) => s.id === session)) {
    throw new UsageError(`session ${session} is not in ${paths.config} (sessions: ${config.sessions.map((s) => s.id).join(", ")}); add it there first`);
  }
}

export default class HookInstall extends RelayCommand {
  static override description =
    "Add the relay's Claude Code hooks for a session (Stop: claude-stop, SessionStart: claude-start) to DIR/.claude/settings.json, keeping everything else.";
  static override enableJsonFlag = true;
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    project: Flags.string({ char: "p", description: "the Claude Code project directory (default: the current directory)" }),
    timeout: Flags.integer({ description: "how long the Stop hook waits for a reply, in seconds (the hook's own timeout is 60 s more)", min: 1, default: DEFAULT_WAIT_S }),
    "max-turns": Flags.integer({ description: "most relayed turns in a row before the agent is let stop (default 8)", min: 1 }),
  };

  async run(): Promise<{ settings: string; changed: boolean; hooks: ReturnType<typeof relayHooks> }> {
    const { flags } = await this.parse(HookInstall);
    checkSession(flags.session);
    const paths = this.resolvePaths(flags.root);
    await checkConfigured(paths, flags.session, (line) => this.logToStderr(line));
    const file = join(await projectDir(flags.project), ".claude", "settings.json");
    const [{ formatSettings, mergeRelayHooks, parseSettings, relayBin, relayHooks }, { writeAtomic }] = await Promise.all([
      import("../../claude-code/hook.js"),
      import("../../store/files.js"),
    ]);
    const parsed = parseSettings(await readSettingsText(file), file);
    if (!parsed.ok) throw new UsageError(parsed.error);

    const spec: HookSpec = {
      node: process.execPath,
      bin: relayBin(),
      root: paths.root,
      session: flags.session,
      waitS: flags.timeout,
      ...(flags["max-turns"] === undefined ? {} : { maxTurns: flags["max-turns"] }),
    };
    const merged = mergeRelayHooks(parsed.value.value, spec);
    if (merged.changed) {
      await mkdir(dirname(file), { recursive: true });
      await writeAtomic(file, formatSettings({ ...parsed.value, value: merged.value }));
      this.log(`added the relay's Stop and SessionStart hooks for session ${flags.session} to ${file}`);
    } else {
      this.log(`the relay's hooks for session ${flags.session} are already in ${file}; nothing changed`);
    }
    return { settings: file, changed: merged.changed, hooks: relayHooks(spec) };
  }
}
