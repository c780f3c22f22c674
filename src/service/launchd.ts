// The launchd agent that runs `relay run` on one root on macOS (CONTRACT §10): its property list,
// label and place (~/Library/LaunchAgents).
import { homedir } from "node:os";
import { basename, join } from "node:path";

export interface AgentSpec {
  root: string;
  /** Absolute path of the node binary */
  node: string;
  /** Absolute path of bin/relay.js */
  bin: string;
  /** `relay agent` (transport: nats, a root on another host) instead of `relay run` */
  agent?: boolean;
}

/** claude-code-relay.<root's basename> (claude-code-relay.agent.… for `relay agent`), cut down to characters safe in a label and a file name. */
export function agentLabel(root: string, agent = false): string {
  const name = basename(root)
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 64);
  return `claude-code-relay.${agent ? "agent." : ""}${name || "root"}`;
}

export const agentDir = (home = homedir()): string => join(home, "Library", "LaunchAgents");
export const agentFile = (root: string, agent = false): string => `${agentLabel(root, agent)}.plist`;

/** How long launchd waits before starting the relay again after it exited with a failure, seconds. */
export const THROTTLE_S = 30;

const xml = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const str = (s: string): string => `<string>${xml(s)}</string>`;

export class AgentPathError extends Error {
  override name = "AgentPathError";
}

/**
 * KeepAlive restarts the relay when it exits with a failure, not after a clean stop (exit 0 on
 * SIGTERM, as `launchctl bootout` sends); launchd has no RestartPreventExitStatus, so a
 * configuration error (exit 2) is retried every THROTTLE_S seconds until it is fixed.
 */
export function renderPlist(spec: AgentSpec): string {
  for (const path of [spec.root, spec.node, spec.bin]) {
    // eslint-disable-next-line no-control-regex
    if (!path.startsWith("/") || /[\u0000-\u001f]/.test(path)) throw new AgentPathError(`${JSON.stringify(path)} cannot go into a launchd agent (it must be an absolute path on one line)`);
  }
  const logs = join(spec.root, "logs");
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    "<dict>",
    "  <key>Label</key>",
    `  ${str(agentLabel(spec.root, spec.agent === true))}`,
    "  <key>ProgramArguments</key>",
    "  <array>",
    ...[spec.node, spec.bin, spec.agent === true ? "agent" : "run", "--root", spec.root].map((a) => `    ${str(a)}`),
    "  </array>",
    "  <key>WorkingDirectory</key>",
    `  ${str(spec.root)}`,
    "  <key>RunAtLoad</key>",
    "  <true/>",
    "  <key>KeepAlive</key>",
    "  <dict>",
    "    <key>SuccessfulExit</key>",
    "    <false/>",
    "  </dict>",
    "  <key>ThrottleInterval</key>",
    `  <integer>${THROTTLE_S}</integer>`,
    "  <key>ExitTimeOut</key>",
    "  <integer>60</integer>",
    "  <key>StandardOutPath</key>",
    `  ${str(join(logs, "launchd.out.log"))}`,
    "  <key>StandardErrorPath</key>",
    `  ${str(join(logs, "launchd.err.log"))}`,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}

/** What to run after the agent is written (launchctl is macOS's). */
export function agentNextCommands(path: string, label: string): string[] {
  return [`launchctl bootstrap gui/$(id -u) ${path}`, `launchctl print gui/$(id -u)/${label}`];
}
