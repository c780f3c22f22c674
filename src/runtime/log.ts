// Structured JSON-lines log in logs/relay.jsonl plus a readable line on the terminal.
// Secrets are scrubbed from every line, whatever field they hide in.
import { Writable } from "node:stream";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { scrubber } from "./redact.js";
import { RotatingFile } from "./rotating-file.js";

export type { Logger } from "pino";

export { scrubber } from "./redact.js";

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

/** logs/relay.jsonl's rotation when none is given (config.yaml limits.log_max_bytes, log_files) */
const DEFAULT_ROTATION = { maxBytes: 10 * 1024 * 1024, keep: 5 };

export function createLogger(opts: {
  logsDir?: string;
  /** logs/relay.jsonl is rotated past maxBytes, keeping `keep` older files */
  rotation?: { maxBytes: number; keep: number };
  terminal?: NodeJS.WritableStream | null;
  secrets?: (string | undefined)[];
  /** the process's one redaction step (src/runtime/redact.ts); else one made from `secrets` */
  redact?: (text: string) => string;
  level?: string;
}): Logger {
  const scrub = opts.redact ?? scrubber(opts.secrets ?? []);
  const streams: pino.StreamEntry[] = [];
  if (opts.logsDir) {
    streams.push({ level: "debug", stream: new RotatingFile({ path: join(opts.logsDir, "relay.jsonl"), ...(opts.rotation ?? DEFAULT_ROTATION) }) });
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
