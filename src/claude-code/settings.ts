// The relay's entries in a Claude Code settings file (CONTRACT §10): the Stop, SessionStart,
// SessionEnd and StopFailure hooks of one relay session (and PermissionRequest with --permissions), merged with whatever else the file holds, written to
// .claude/settings.local.json by default (the entries hold this machine's absolute paths).
import { fileURLToPath } from "node:url";
import * as z from "zod/mini";
import "../zod-english.js";
import { packageFile } from "../package-files.js";
import type { Parsed } from "./hook-input.js";

/** How the Stop hook hands a reply over: block (wait at the stop) or wake (stop at once, wake later). */
export const HOOK_MODES = ["block", "wake"] as const;
export type HookMode = (typeof HOOK_MODES)[number];

/** The installed Stop hook `timeout` is the wait plus this, so Claude Code never discards our output. */
export const HOOK_TIMEOUT_MARGIN_S = 60;
/** The SessionStart and SessionEnd hooks only read and move a few files. */
export const START_HOOK_TIMEOUT_S = 30;

/** bin/relay.js of this installation. */
export function relayBin(): string {
  return fileURLToPath(packageFile("bin/relay.js"));
}

/** POSIX shell quoting, only where needed: hook commands run through a shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface HookSpec {
  node: string;
  bin: string;
  root: string;
  session: string;
  mode: HookMode;
  /** The Stop hook's longest wait for a reply, seconds */
  waitS: number;
  maxTurns?: number;
  /** false: --no-evidence; a number: --evidence-max */
  evidence?: false | number;
  /** add the PermissionRequest hook, with JC's time to answer in seconds */
  permissionWaitS?: number;
}

export type HookKind = "claude-stop" | "claude-start" | "claude-end" | "claude-failure" | "claude-permission";
const EVENT_OF = { "claude-stop": "Stop", "claude-start": "SessionStart", "claude-end": "SessionEnd", "claude-failure": "StopFailure", "claude-permission": "PermissionRequest" } as const satisfies Record<HookKind, string>;
export const HOOK_KINDS = Object.keys(EVENT_OF) as HookKind[];
type HookEvent = (typeof EVENT_OF)[HookKind];

export function hookCommand(kind: HookKind, spec: HookSpec): string {
  const base = [shellQuote(spec.node), shellQuote(spec.bin), "hook", kind, "--session", spec.session, "--root", shellQuote(spec.root)];
  if (kind === "claude-stop") {
    base.push("--mode", spec.mode, "--timeout", String(spec.waitS));
    if (spec.maxTurns !== undefined) base.push("--max-turns", String(spec.maxTurns));
    if (spec.evidence === false) base.push("--no-evidence");
    else if (spec.evidence !== undefined) base.push("--evidence-max", String(spec.evidence));
  }
  if (kind === "claude-permission" && spec.permissionWaitS !== undefined) base.push("--timeout", String(spec.permissionWaitS));
  return base.join(" ");
}

export interface CommandHook {
  type: "command";
  command: string;
  timeout: number;
  statusMessage?: string;
  async?: boolean;
  asyncRewake?: boolean;
}

export function relayHooks(spec: HookSpec): { event: HookEvent; kind: HookKind; hook: CommandHook }[] {
  const stop: CommandHook =
    spec.mode === "wake"
      ? {
          type: "command",
          command: hookCommand("claude-stop", spec),
          timeout: spec.waitS + HOOK_TIMEOUT_MARGIN_S,
          async: true,
          asyncRewake: true,
          statusMessage: `relay: the reviewer's reply to ${spec.session} will wake this session`,
        }
      : { type: "command", command: hookCommand("claude-stop", spec), timeout: spec.waitS + HOOK_TIMEOUT_MARGIN_S, statusMessage: `relay: waiting for the reviewer's reply (${spec.session})` };
  return [
    { event: "Stop", kind: "claude-stop", hook: stop },
    { event: "SessionStart", kind: "claude-start", hook: { type: "command", command: hookCommand("claude-start", spec), timeout: START_HOOK_TIMEOUT_S } },
    { event: "SessionEnd", kind: "claude-end", hook: { type: "command", command: hookCommand("claude-end", spec), timeout: START_HOOK_TIMEOUT_S } },
    { event: "StopFailure", kind: "claude-failure", hook: { type: "command", command: hookCommand("claude-failure", spec), timeout: START_HOOK_TIMEOUT_S } },
    ...(spec.permissionWaitS === undefined
      ? []
      : [
          {
            event: "PermissionRequest" as const,
            kind: "claude-permission" as const,
            hook: {
              type: "command" as const,
              command: hookCommand("claude-permission", spec),
              timeout: spec.permissionWaitS + HOOK_TIMEOUT_MARGIN_S,
              statusMessage: `relay: asking JC for permission (${spec.session})`,
            },
          },
        ]),
  ];
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether a settings.json hook entry is this session's relay hook of that kind. */
export function isRelayHook(entry: unknown, kind: HookKind, session: string): boolean {
  if (!isRecord(entry) || typeof entry.command !== "string") return false;
  return new RegExp(`(?:^|\\s)hook ${kind} --session ${escapeRe(session)}(?=\\s|$)`).test(entry.command);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The parts of settings.json we touch, checked before anything is changed. */
const groupSchema = z.looseObject({
  matcher: z.optional(z.string({ error: "expected a string" })),
  hooks: z.array(z.looseObject({}, { error: "expected an object" }), { error: "expected a list of hooks" }),
}, { error: "expected an object with a hooks list" });
const groupsSchema = z.optional(z.array(groupSchema, { error: "expected a list" }));
const settingsSchema = z.looseObject(
  {
    hooks: z.optional(
      z.looseObject(
        {
          Stop: groupsSchema,
          SessionStart: groupsSchema,
          SessionEnd: groupsSchema,
          StopFailure: groupsSchema,
          PermissionRequest: groupsSchema,
        },
        { error: "expected an object" },
      ),
    ),
  },
  { error: "expected a JSON object" },
);

export interface SettingsFile {
  /** The parsed JSON, untouched (key order kept). */
  value: Record<string, unknown>;
  indent: string;
  finalNewline: boolean;
}

/** Parse settings.json text (null: no file yet). Errors are one line. */
export function parseSettings(text: string | null, file = ".claude/settings.local.json"): Parsed<SettingsFile> {
  if (text === null || text.trim() === "") return { ok: true, value: { value: {}, indent: "  ", finalNewline: true } };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = (err as Error).message.replace(/\s+/g, " ").trim();
    return { ok: false, error: `${file} is not valid JSON (${why.length > 160 ? `${why.slice(0, 160)}…` : why}); fix it or move it aside, nothing was changed` };
  }
  const checked = settingsSchema.safeParse(json);
  if (!checked.success || !isRecord(json)) {
    const issue = checked.success ? undefined : checked.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").slice(1) : "(top level)";
    return { ok: false, error: `${file}: ${where}: ${issue?.message ?? "expected a JSON object"}; fix it or move it aside, nothing was changed` };
  }
  const indent = /^\{\s*\n([ \t]+)\S/.exec(text)?.[1] ?? "  ";
  return { ok: true, value: { value: json, indent, finalNewline: text.endsWith("\n") } };
}

export function formatSettings(file: SettingsFile): string {
  return `${JSON.stringify(file.value, null, file.indent)}${file.finalNewline ? "\n" : ""}`;
}

const HOOK_KEYS = ["type", "command", "timeout", "statusMessage", "async", "asyncRewake"] as const;

function sameHook(entry: Record<string, unknown>, hook: CommandHook): boolean {
  return HOOK_KEYS.every((key) => entry[key] === hook[key]);
}

/** Our keys of the entry made exactly `hook`'s (a mode switch drops async and asyncRewake); other keys stay. */
function updateHook(entry: Record<string, unknown>, hook: CommandHook): void {
  for (const key of HOOK_KEYS) {
    if (hook[key] === undefined) delete entry[key];
    else entry[key] = hook[key];
  }
}

/**
 * Add (or bring up to date) this session's Stop, SessionStart and SessionEnd hooks, keeping every other key
 * and hook as it is. `changed` is false when they were there already, exactly so.
 */
export function mergeRelayHooks(settings: Record<string, unknown>, spec: HookSpec): { value: Record<string, unknown>; changed: boolean } {
  const value = structuredClone(settings);
  let changed = false;
  const hooks = isRecord(value.hooks) ? value.hooks : (value.hooks = {});
  for (const { event, kind, hook } of relayHooks(spec)) {
    const existing = hooks[event];
    const groups: unknown[] = Array.isArray(existing) ? existing : [];
    hooks[event] = groups;
    let found = false;
    for (const group of groups) {
      if (!isRecord(group) || !Array.isArray(group.hooks)) continue;
      for (let i = 0; i < group.hooks.length; i++) {
        const entry: unknown = group.hooks[i];
        if (!isRelayHook(entry, kind, spec.session) || !isRecord(entry)) continue;
        if (found) {
          group.hooks.splice(i--, 1); // a duplicate of ours
          changed = true;
        } else if (!sameHook(entry, hook)) {
          updateHook(entry, hook);
          changed = true;
        }
        found = true;
      }
    }
    if (!found) {
      groups.push({ hooks: [{ ...hook }] });
      changed = true;
    }
  }
  // A hook this install no longer asks for (a PermissionRequest hook installed before without --permissions now) goes.
  const wanted = new Set(relayHooks(spec).map((h) => h.kind));
  const dropped = removeRelayHooks(value, spec.session, HOOK_KINDS.filter((k) => !wanted.has(k)));
  if (dropped.removed > 0) return { value: dropped.value, changed: true };
  return { value: changed ? value : settings, changed };
}

/**
 * Remove exactly this session's relay hooks; a group, event list or `hooks` object left empty by
 * that goes too. Everything else stays as it is.
 */
export function removeRelayHooks(settings: Record<string, unknown>, session: string, kinds: readonly HookKind[] = HOOK_KINDS): { value: Record<string, unknown>; removed: number } {
  const value = structuredClone(settings);
  let removed = 0;
  const hooks = value.hooks;
  if (!isRecord(hooks)) return { value: settings, removed };
  for (const kind of kinds) {
    const event = EVENT_OF[kind];
    const groups = hooks[event];
    if (!Array.isArray(groups)) continue;
    let goneHere = 0;
    for (let g = 0; g < groups.length; g++) {
      const group: unknown = groups[g];
      if (!isRecord(group) || !Array.isArray(group.hooks)) continue;
      const entries: unknown[] = group.hooks;
      const kept = entries.filter((entry) => !isRelayHook(entry, kind, session));
      const gone = entries.length - kept.length;
      if (gone === 0) continue;
      goneHere += gone;
      group.hooks = kept;
      if (kept.length === 0) groups.splice(g--, 1);
    }
    removed += goneHere;
    if (goneHere > 0 && groups.length === 0) delete hooks[event];
  }
  if (removed > 0 && Object.keys(hooks).length === 0) delete value.hooks;
  return { value: removed > 0 ? value : settings, removed };
}
