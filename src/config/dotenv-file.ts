// Editing .env without disturbing it: a value is added (or fills an empty or placeholder line of
// its key), every other line is kept as it was. Only ever adds: an existing value is never replaced.
import { parse as parseDotenv } from "dotenv";

/** The `KEY=value` pairs of .env text. */
export const parseEnvText = (raw: string): Record<string, string> => parseDotenv(raw);

/** What .env.example ships as the key: a value that is not a key. */
export const isPlaceholderKey = (value: string | undefined): boolean => value === undefined || value.trim() === "" || value.includes("...");

/** `raw` (null: no .env yet) with `KEY=value` added, filling an empty or placeholder `KEY=` line if there is one. */
export function withEnvValue(raw: string | null, key: string, value: string, isEmpty: (v: string) => boolean = (v) => v.trim() === ""): string {
  const lines = raw === null ? [] : raw.split("\n");
  const own = new RegExp(`^\\s*(export\\s+)?${key}\\s*=(.*)$`);
  const blank = lines.findIndex((l) => {
    const m = own.exec(l);
    return m !== null && isEmpty((m[2] ?? "").trim().replace(/^(["'])(.*)\1$/, "$2"));
  });
  if (blank >= 0) lines[blank] = `${key}=${value}`;
  else {
    if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    lines.push(`${key}=${value}`, "");
  }
  return lines.join("\n");
}

/** The value of `key` in .env text, when it has a non-empty one. */
export function envValue(raw: string | null, key: string): string | undefined {
  if (raw === null) return undefined;
  const value = parseDotenv(raw)[key];
  return value === undefined || value === "" ? undefined : value;
}
