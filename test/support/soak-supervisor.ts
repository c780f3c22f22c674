// The soaks' supervisor: keeps one relay process (`relay run` or `relay agent`) alive, starting it
// again shortly after every death, and tells the deaths apart: a SIGKILL the soak sent (a kill),
// a SIGKILL at the crash point the life was started with (RELAY_CRASH_AT), and anything else (a
// problem, written down with the end of its stderr). Some lives start with a crash point drawn
// from the component's list. `stop()` ends the current life with SIGTERM and expects exit 0.
import { setTimeout as sleep } from "node:timers/promises";
import type { Daemon } from "./cli.js";
import { pick } from "./soak-random.js";

/** How long a life started with a crash point is spared from kills. */
const ARMED_MS = 8_000;

interface Life {
  daemon: Daemon;
  /** RELAY_CRASH_AT of this life */
  crashAt: string | null;
  /** the soak killed it */
  killed: boolean;
  since: number;
}

export interface SupervisorCounts {
  kills: number;
  /** crash point name → how many lives died there */
  crashPoints: Record<string, number>;
  lives: number;
}

export class Supervisor {
  private life: Life | null = null;
  private stopping = false;
  private finished = false;
  private running: Promise<void> = Promise.resolve();
  /** lives started from now on get no crash point (the drain) */
  crashPointsOff = false;
  readonly counts: SupervisorCounts = { kills: 0, crashPoints: {}, lives: 0 };

  constructor(
    readonly name: string,
    private readonly launch: (extraEnv: Record<string, string>) => Promise<Daemon>,
    private readonly points: readonly string[],
    /** the share of lives that start with a crash point */
    private readonly crashShare: number,
    private readonly random: () => number,
    private readonly problems: string[],
  ) {}

  /** The first life, started and ready, then the restarts in the background. */
  async start(): Promise<void> {
    const first = await this.begin();
    this.running = this.supervise(first).finally(() => {
      this.finished = true;
    });
  }

  private async begin(): Promise<Life> {
    const crashAt = !this.crashPointsOff && this.random() < this.crashShare ? `${pick(this.random, this.points)}:${1 + Math.floor(this.random() * 2)}` : null;
    this.counts.lives += 1;
    try {
      const daemon = await this.launch(crashAt === null ? {} : { RELAY_CRASH_AT: crashAt });
      const life = { daemon, crashAt, killed: false, since: Date.now() };
      this.life = life;
      return life;
    } catch (err) {
      // The start helper gave up on a start that made no progress: a problem, and the soak goes on.
      this.problems.push(`${this.name}: a start failed: ${err instanceof Error ? err.message.slice(0, 2000) : String(err)}`);
      throw err;
    }
  }

  private async supervise(first: Life): Promise<void> {
    let life = first;
    for (;;) {
      const exit = await life.daemon.exited;
      this.life = null;
      if (life.killed) this.counts.kills += 1;
      else if (this.stopping && exit.code === 0) return;
      else if (exit.signal === "SIGKILL" && life.crashAt !== null) {
        const point = life.crashAt.split(":")[0] ?? life.crashAt;
        this.counts.crashPoints[point] = (this.counts.crashPoints[point] ?? 0) + 1;
      } else this.problems.push(`${this.name} exited by itself (code ${String(exit.code)}, signal ${String(exit.signal)})${this.stopping ? " when asked to stop" : ""}: ${life.daemon.stderr().slice(-3000)}`);
      if (this.stopping) return;
      await sleep(this.random() * 300);
      for (;;) {
        try {
          life = await this.begin();
          break;
        } catch {
          if (this.stopping) return;
          await sleep(1_000);
        }
      }
    }
  }

  /**
   * SIGKILL the current life (false when there is none, or when it was started with a crash point
   * less than ARMED_MS ago: it gets its chance to reach it); the supervisor starts the next.
   */
  async kill(): Promise<boolean> {
    const life = this.life;
    if (life === null || !life.daemon.alive()) return false;
    if (life.crashAt !== null && Date.now() - life.since < ARMED_MS) return false;
    life.killed = true;
    life.daemon.child.kill("SIGKILL");
    await life.daemon.exited;
    return true;
  }

  /** The current life's output (for a failure message). */
  stderr(): string {
    return this.life?.daemon.stderr() ?? "";
  }

  /** SIGTERM the current life and wait for the supervisor to finish (a life still starting is waited for). */
  async stop(): Promise<void> {
    this.stopping = true;
    while (this.life === null && !this.finished) await sleep(50);
    this.life?.daemon.child.kill("SIGTERM");
    await this.running;
  }
}
