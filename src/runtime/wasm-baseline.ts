// WebAssembly under `relay run`: V8's baseline code only. Node's fetch (undici), through which
// the Anthropic SDK makes every call, parses HTTP with llhttp compiled to WebAssembly. V8 first
// compiles it with Liftoff, its baseline compiler, and once a function has run long enough
// compiles it again with TurboFan on a helper thread. For llhttp's parser that second compile
// took 16-28 MB of memory for about a tenth of a second (perf's page faults during three calls over
// a 400k-character history: three quarters were TurboFan's register allocator on llhttp), and it
// was the daemon's highest resident memory: 103-105 MB against 76 MB with Liftoff only (the
// README's "relay run's memory"). Liftoff's code parses a reply of a few kilobytes as well: the
// time that matters is the API's, not the parser's.
//
// The flags are read by V8 each time it compiles WebAssembly, so setting them at run time, before
// the first call, takes effect. Both are needed: on Node 24 either alone still tiers up (without
// dynamic tiering V8 tiers up eagerly; `--liftoff-only` set at run time is not heeded there).
import { setFlagsFromString } from "node:v8";

/** From now on V8 compiles WebAssembly with Liftoff only, never with TurboFan. */
export function keepWasmOnBaseline(): void {
  try {
    setFlagsFromString("--no-wasm-tier-up --no-wasm-dynamic-tiering");
  } catch {
    // a V8 with frozen flags: TurboFan stays, which costs memory for a moment, nothing else
  }
}
