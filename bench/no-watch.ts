// Preloaded into the "seed design" daemon with `node --import`: makes fs.watch throw, so the
// relay falls back to its POLL_INTERVAL_MS poll alone (the seed's fixed 1 s polling). The relay's
// own code is untouched; src/daemon.ts already treats a failing fs.watch as "poll only".
// (If the relay grows a RELAY_NO_WATCH switch, the bench sets it too; this shim is then redundant.)
import { createRequire, syncBuiltinESMExports } from "node:module";

const require = createRequire(import.meta.url);
const fs = require("node:fs") as typeof import("node:fs");

const refuse = (): never => {
  const err = new Error("fs.watch is disabled in the benchmark's seed-design run") as NodeJS.ErrnoException;
  err.code = "ENOSYS";
  throw err;
};
fs.watch = refuse as unknown as typeof fs.watch;
syncBuiltinESMExports();
