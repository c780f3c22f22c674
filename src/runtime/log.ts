// Structured JSON-lines log in logs/relay.jsonl plus a readable line on the terminal.
// Secrets are scrubbed from every line, whatever field they hide in.
import { Writable } from "node:stream";
import { join } from "node:path";
import pino, { type Logger } from "pino";

export type { Logger } from "pino";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function scrubber(secrets: (string | undefined)[]): (line: string) => string {
  const present = secrets.filter((s): s is string => typeof s === "string" && s.length >= 8);
  if (present.length === 0) return (line) => line;
  const pattern = new RegExp(present.map(escape).join("|"), "g");
  return (line) => line.replace(pattern, "[redacted]");
}

const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const QUIET = new Set(["level", "time", "pid", "hostname", "msg"]);

/** One human line per record: `12:00:01 info  relayed session=session-1 ...`. */
export function humanLine(json: string): string {
  try {
    const rec = JSON.parse(json) as Record<string, unknown>;
    const time = new Date(typeof rec.time === "number" ? rec.time : Date.now()).toISOString().slice(11, 19);
    const level = (LEVELS[Number(rec.level)] ?? "info").padEnd(5);
    const extras = Object.entries(rec)
      .filter(([k]) => !QUIET.has(k))
      .map(([k, v]) => `${k}=${typeof v === "string" ? (v.length > 80 ? `${v.slice(0, 77)}...` : v) : JSON.stringify(v)}`)
      .join(" ");
    return `${time} ${level} ${String(rec.msg ?? "")}${extras ? ` ${extras}` : ""}\n`;
  } catch {
    return json;
  }
}

export function createLogger(opts: { logsDir?: string; terminal?: NodeJS.WritableStream | null; secrets: (string | undefined)[]; level?: string }): Logger {
  const scrub = scrubber(opts.secrets);
  const streams: pino.StreamEntry[] = [];
  if (opts.logsDir) {
    streams.push({ level: "debug", stream: pino.destination({ dest: join(opts.logsDir, "relay.jsonl"), sync: true, mkdir: true, append: true }) });
  }
  const terminal = opts.terminal;
  if (terminal) {
    streams.push({
      level: "info",
      stream: new Writable({
        write(chunk: Buffer, _enc, done) {
          terminal.write(humanLine(chunk.toString("utf8").trimEnd()));
          done();
        },
      }),
    });
  }
  return pino(
    {
      level: opts.level ?? "debug",
      base: { pid: process.pid },
      hooks: { streamWrite: scrub },
    },
    pino.multistream(streams),
  );
}

/** A logger that writes nowhere (commands that only read). */
export const silentLogger = (): Logger => pino({ level: "silent" });
