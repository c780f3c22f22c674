import { access, mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { DEFAULT_MAX_TURNS, DEFAULT_PERMISSION_WAIT_S, DEFAULT_WAIT_S, DEFAULT_WAKE_WAIT_S } from "../../claude-code/defaults.js";
import type { HookSpec, relayHooks } from "../../claude-code/settings.js";
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
  const { loadClientConfig } = await import("../../config/config.js");
  const config = await loadClientConfig(paths, process.env, { seed: false });
  if (!config.sessions.some((s) => s.id === session)) {
    throw new UsageError(`session ${session} is not in ${paths.config} (sessions: ${config.sessions.map((s) => s.id).join(", ")}); add it there first`);
  }
}

/** The settings file the hooks go to, and the other one (which may hold entries of an older install). */
export function settingsFiles(project: string, shared: boolean): { file: string; other: string } {
  const local = join(project, ".claude", "settings.local.json");
  const sharedFile = join(project, ".claude", "settings.json");
  return shared ? { file: sharedFile, other: local } : { file: local, other: sharedFile };
}

export default class HookInstall extends RelayCommand {
  static override examples = ["<%= config.bin %> hook install --session session-1 --project ~/code/app --root ~/relay", { description: "Also answer permission prompts from the phone", command: "<%= config.bin %> hook install --session session-1 --permissions --root ~/relay" }];
  static override description =
    "Add the relay's Claude Code hooks for a session (Stop, SessionStart, SessionEnd, StopFailure) to DIR/.claude/settings.local.json (--shared: settings.json), keeping everything else.";
  static override enableJsonFlag = true;
  static override flags = {
    session: Flags.string({ char: "s", description: "the relay session id (from config.yaml)", required: true }),
    project: Flags.string({ char: "p", description: "the Claude Code project directory (default: the current directory)" }),
    mode: Flags.string({ description: "block: the Stop hook waits for the reply; wake: the agent stops at once and the reply wakes it (interactive and SDK-driven sessions, not plain claude -p)", options: ["block", "wake"], default: "block" }),
    timeout: Flags.integer({ description: `longest wait for a reply, in seconds (default ${DEFAULT_WAIT_S} in block mode, ${DEFAULT_WAKE_WAIT_S} in wake mode; the hook's own timeout is 60 s more)`, min: 1 }),
    "max-turns": Flags.integer({ description: `most relayed turns in a row before the agent is let stop (default ${DEFAULT_MAX_TURNS})`, min: 1 }),
    evidence: Flags.boolean({ description: "the Stop hook appends an account of each turn (tool calls, files changed, git diff --stat) to the agent's message; --no-evidence leaves it out", allowNo: true, default: true }),
    "evidence-max": Flags.integer({ description: "cap on that account, in characters (default 4000)", min: 200 }),
    permissions: Flags.boolean({ description: "also add a PermissionRequest hook: tool permission prompts go to JC (Allow / Deny on the phone); no answer in time denies", default: false }),
    "permission-timeout": Flags.integer({ description: "how long JC has to answer a permission prompt, in seconds (default 600)", min: 1 }),
    shared: Flags.boolean({ description: "write to .claude/settings.json (committed with the project) instead of settings.local.json", default: false }),
  };

  async run(): Promise<{ settings: string; changed: boolean; mode: string; hooks: ReturnType<typeof relayHooks> }> {
    const { flags } = await this.parse(HookInstall);
    checkSession(flags.session);
    const paths = this.resolvePaths(flags.root);
    await checkConfigured(paths, flags.session, (line) => this.logToStderr(line));
    const project = await projectDir(flags.project);
    const { file, other } = settingsFiles(project, flags.shared);
    const [{ formatSettings, mergeRelayHooks, parseSettings, relayBin, relayHooks, removeRelayHooks }, { writeAtomic }] = await Promise.all([
      import("../../claude-code/settings.js"),
      import("../../store/files.js"),
    ]);
    const parsed = parseSettings(await readSettingsText(file), file);
    if (!parsed.ok) throw new UsageError(parsed.error);
    // An older install (or the other choice of file) may hold this session's entries: they move here.
    const otherText = await readSettingsText(other);
    const otherParsed = otherText === null ? null : parseSettings(otherText, other);
    if (otherParsed && !otherParsed.ok) throw new UsageError(otherParsed.error);

    const mode = flags.mode === "wake" ? "wake" : "block";
    const spec: HookSpec = {
      node: process.execPath,
      bin: relayBin(),
      root: paths.root,
      session: flags.session,
      mode,
      waitS: flags.timeout ?? (mode === "wake" ? DEFAULT_WAKE_WAIT_S : DEFAULT_WAIT_S),
      ...(flags["max-turns"] === undefined ? {} : { maxTurns: flags["max-turns"] }),
      ...(flags.permissions ? { permissionWaitS: flags["permission-timeout"] ?? DEFAULT_PERMISSION_WAIT_S } : {}),
      ...(flags.evidence ? (flags["evidence-max"] === undefined ? {} : { evidence: flags["evidence-max"] }) : { evidence: false as const }),
    };
    const merged = mergeRelayHooks(parsed.value.value, spec);
    if (merged.changed) {
      await mkdir(dirname(file), { recursive: true });
      await writeAtomic(file, formatSettings({ ...parsed.value, value: merged.value }));
      this.log(`added the relay's Stop (${mode} mode), SessionStart, SessionEnd, StopFailure${flags.permissions ? " and PermissionRequest" : ""} hooks for session ${flags.session} to ${file}`);
    } else {
      this.log(`the relay's hooks for session ${flags.session} are already in ${file}; nothing changed`);
    }
    if (otherParsed?.ok) {
      const moved = removeRelayHooks(otherParsed.value.value, flags.session);
      if (moved.removed > 0) {
        await writeAtomic(other, formatSettings({ ...otherParsed.value, value: moved.value }));
        this.log(`removed ${moved.removed} older relay hook${moved.removed === 1 ? "" : "s"} for session ${flags.session} from ${other}`);
      }
    }
    return { settings: file, changed: merged.changed, mode, hooks: relayHooks(spec) };
  }
}
