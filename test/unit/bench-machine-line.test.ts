import { describe, expect, it } from "vitest";
import { cpuOf, machineLineOf, otherMachine } from "../../bench/machine-line.js";

const previous = "# relay benchmark (`npm run bench`), 2026-11-29\n\nMachine: AMD EPYC, 2 cores, Node v20.20.2, Linux 6.18.44-fc-v782; temporary roots in /tmp (ext4). One durable atomic write took 0.6 ms.\n\n| figure | p50 |\n";

describe("the bench's machine line", () => {
  it("is read from an earlier --out file up to its first ';'", () => {
    expect(machineLineOf(previous)).toBe("AMD EPYC, 2 cores, Node v20.20.2, Linux 6.18.44-fc-v782");
    expect(machineLineOf("| figure | p50 |\n")).toBeNull();
    expect(cpuOf("AMD EPYC, 2 cores, Node v20.20.2, Linux 6.18.44-fc-v782")).toBe("AMD EPYC, 2 cores");
  });

  it("names the previous machine only when its CPU or core count differs", () => {
    expect(otherMachine(previous, "Intel(R) Xeon(R) Processor, 2 cores, Node v20.20.2, Linux 6.18.44-fc-v657; temporary roots in /tmp (ext4)")).toBe("AMD EPYC, 2 cores, Node v20.20.2, Linux 6.18.44-fc-v782");
    expect(otherMachine(previous, "AMD EPYC, 4 cores, Node v20.20.2, Linux 6.18.44-fc-v782; temporary roots in /tmp (ext4)")).not.toBeNull();
    expect(otherMachine(previous, "AMD EPYC, 2 cores, Node v24.1.0, Linux 6.18.44-fc-v900; temporary roots in /tmp (ext4)")).toBeNull();
    expect(otherMachine("no machine line", "AMD EPYC, 2 cores")).toBeNull();
  });
});
