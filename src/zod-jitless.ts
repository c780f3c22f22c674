// zod without its JIT, for the commands that parse a few small objects and exit: the Claude Code
// hooks (src/commands/fast/hooks.ts) and `relay status`, for which src/commands/fast/hot.ts loads
// this module with import(). A module of ours, not import("zod/mini") there: a dynamically
// imported package is bundled whole (263 KB of zod/mini), while this static import keeps only what is used.
import * as z from "zod/mini";

/**
 * Turns off zod's JIT, which compiles a parser for each object schema with `new Function` on its
 * first use: that costs a command that exits at once more than it saves (about 10 ms of a Stop
 * hook's CPU on Node 20). `relay run`, which parses for weeks, keeps it.
 */
export function zodWithoutJit(): void {
  z.config({ jitless: true });
}
