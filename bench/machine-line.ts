// The bench's "Machine: …" line: which host a run's times come from. Two runs' times compare
// only on the same CPU model and core count (the same bench on another host moved bare
// `node -e 0` from 116 to 74 ms), so a previous column from another machine is said to be one.

/** The machine line of an earlier `--out` file, up to its first ";" (CPU, cores, Node, kernel), or null. */
export function machineLineOf(markdown: string): string | null {
  const line = markdown.split("\n").find((l) => l.startsWith("Machine: "));
  return line === undefined ? null : (line.slice("Machine: ".length).split(";")[0] ?? "").trim();
}

/** The CPU model and core count of a machine line ("AMD EPYC, 2 cores"): what makes times comparable. */
export function cpuOf(machineLine: string): string {
  return machineLine.split(", ").slice(0, 2).join(", ");
}

/** The previous run's machine line when its CPU or core count differs from this run's, else null. */
export function otherMachine(previousMarkdown: string, thisMachine: string): string | null {
  const previous = machineLineOf(previousMarkdown);
  return previous !== null && cpuOf(previous) !== cpuOf(thisMachine) ? previous : null;
}
