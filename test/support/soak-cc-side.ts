// A simulated Claude Code session for the soaks, following CONTRACT §5 exactly as a script
// would: it sends envelopes by writing `queue/.NAME.tmp` and renaming it to `queue/NAME.json`,
// and takes each reply by reading `dispatch/<session>/input.txt` with the `input.json` beside it,
// then deleting `input.txt` (the acknowledgement). Now and then it holds a reply a while before
// deleting it, and while it holds one it checks that nobody overwrites `input.txt` or rewrites
// `input.json` under it: every hand-over it saw, and every such breach, is recorded.
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** One reply as the session received it: input.txt's text and what input.json said about it. */
export interface HandOver {
  session: string;
  text: string;
  replyId: string | null;
  inReplyTo: string | null;
  source: string | null;
  at: number;
}

interface Held {
  ino: number;
  mtimeMs: number;
  size: number;
  text: string;
  replyId: string | null;
  until: number;
}

const readMeta = (dir: string): { reply_id?: unknown; in_reply_to?: unknown; source?: unknown } | null => {
  try {
    return JSON.parse(readFileSync(join(dir, "input.json"), "utf8")) as { reply_id?: unknown; in_reply_to?: unknown; source?: unknown };
  } catch {
    return null;
  }
};
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

export class CcSide {
  private held: Held | null = null;
  /** markers sent, in order */
  readonly sent: string[] = [];
  readonly handOvers: HandOver[] = [];

  constructor(
    readonly root: string,
    readonly session: string,
    private readonly random: () => number,
    /** where breaches of the contract are written down */
    private readonly problems: string[],
  ) {}

  private get dir(): string {
    return join(this.root, "dispatch", this.session);
  }

  /** Envelopes sent whose reply has not been handed over yet. */
  outstanding(): number {
    return this.sent.length - this.handOvers.length;
  }

  /** Drop an envelope carrying `<marker>` in its content, the way `relay send` does. */
  send(marker: string): void {
    const queue = join(this.root, "queue");
    const tmp = join(queue, `.${marker}.tmp`);
    writeFileSync(tmp, JSON.stringify({ session_id: this.session, id: marker, content: `work item <${marker}> for ${this.session}` }));
    renameSync(tmp, join(queue, `${marker}.json`));
    this.sent.push(marker);
  }

  /**
   * Look at input.txt: take a new reply (holding it for a while, sometimes), or check the one held
   * and, once its time is up, delete it. `hold` false takes and deletes at once (the drain's end).
   */
  take(now: number, hold = true): void {
    const input = join(this.dir, "input.txt");
    let st;
    try {
      st = statSync(input);
    } catch {
      if (this.held) this.problems.push(`${this.session}: input.txt vanished while the CC side held it (${JSON.stringify(this.held.text)})`);
      this.held = null;
      return;
    }
    const held = this.held;
    if (held) {
      if (st.ino !== held.ino || st.mtimeMs !== held.mtimeMs || st.size !== held.size) {
        this.problems.push(`${this.session}: input.txt overwritten while unacknowledged (held ${JSON.stringify(held.text)})`);
      }
      if (hold && now < held.until) return;
      const text = readFileSync(input, "utf8");
      if (text !== held.text) this.problems.push(`${this.session}: input.txt changed under the CC side: ${JSON.stringify(held.text)} became ${JSON.stringify(text)}`);
      const metaNow = str(readMeta(this.dir)?.reply_id);
      if (metaNow !== held.replyId) this.problems.push(`${this.session}: input.json rewritten while input.txt existed (${String(held.replyId)} became ${String(metaNow)})`);
      unlinkSync(input);
      this.held = null;
      return;
    }
    const text = readFileSync(input, "utf8");
    const meta = readMeta(this.dir);
    this.handOvers.push({ session: this.session, text, replyId: str(meta?.reply_id), inReplyTo: str(meta?.in_reply_to), source: str(meta?.source), at: now });
    this.held = { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, text, replyId: str(meta?.reply_id), until: now + (this.random() < 0.3 ? this.random() * 600 : 0) };
    if (!hold) this.take(now, false);
  }
}
