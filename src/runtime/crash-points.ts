// Fault injection for the crash tests: RELAY_CRASH_AT=<point>[:<n>] kills the process with
// SIGKILL the n-th time (default 1st) it passes that point. Unset in normal use: a no-op.
const spec = process.env.RELAY_CRASH_AT;
const [point, nth] = spec ? spec.split(":") : [];
const target = Number(nth ?? "1");
let seen = 0;

export async function crashPoint(name: string): Promise<void> {
  if (!point || name !== point) return;
  seen += 1;
  if (seen === target) {
    process.kill(process.pid, "SIGKILL");
    await new Promise(() => {}); // never continue past a crash point
  }
}
