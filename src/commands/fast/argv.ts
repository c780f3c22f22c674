// A strict parser for the flags of the commands `bin/relay.js` runs without oclif (./hot.ts, ./hooks.ts).
// It accepts only command lines whose meaning is plain (each known flag at most once, valid
// values, nothing positional); for anything else it answers null and oclif parses the line, so
// help, errors and their exit codes stay oclif's.

/** Environment that changes how oclif runs a command (debug output, JSON by default): leave those runs to oclif. */
const OCLIF_ENV = ["DEBUG", "RELAY_DEBUG", "RELAY_CONTENT_TYPE"];

/** Whether `env` asks oclif for something of its own, so no command line is run without it. */
export const oclifEnvironment = (env: NodeJS.ProcessEnv): boolean => OCLIF_ENV.some((name) => env[name] !== undefined);

/** What the parser needs to know of one flag: the facts oclif's own definition holds too. */
export type FlagSpec =
  | { readonly kind: "string"; readonly char?: string; readonly required?: boolean; readonly options?: readonly string[]; readonly default?: string }
  | { readonly kind: "integer"; readonly char?: string; readonly required?: boolean; readonly min?: number; readonly default?: number }
  | { readonly kind: "boolean"; readonly char?: string; readonly allowNo?: boolean; readonly default?: boolean };

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** The value one spec gives: defaults and required flags are always there. */
type ValueOf<S extends FlagSpec> = S extends { kind: "boolean" }
  ? boolean
  : S extends { kind: "integer" }
    ? S extends { default: number } | { required: true }
      ? number
      : number | undefined
    : S extends { default: string } | { required: true }
      ? string
      : string | undefined;

export type ParsedFlags<F extends FlagSpecs> = { -readonly [K in keyof F]: ValueOf<F[K]> };

const INTEGER = /^-?\d+$/;

function valueOk(spec: FlagSpec, value: string): boolean {
  if (value === "" || value.startsWith("-")) return false;
  if (spec.kind === "string") return spec.options === undefined || spec.options.includes(value);
  if (spec.kind === "integer") return INTEGER.test(value) && Number.isSafeInteger(Number(value)) && (spec.min === undefined || Number(value) >= spec.min);
  return false;
}

/**
 * The flags of `argv` (the words after the command's id), or null when the line is not plain:
 * an unknown word, a repeated flag, a bad or missing value, a missing required flag, help.
 */
export function parsePlainFlags<F extends FlagSpecs>(specs: F, argv: readonly string[]): ParsedFlags<F> | null {
  const byChar = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.char !== undefined) byChar.set(spec.char, name);
  const given = new Map<string, string | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? "";
    let name: string | undefined;
    let inline: string | undefined;
    let negated = false;
    if (/^--[a-z][a-z0-9-]*(=|$)/.test(word)) {
      const eq = word.indexOf("=");
      name = word.slice(2, eq === -1 ? undefined : eq);
      if (eq !== -1) inline = word.slice(eq + 1);
      if (!(name in specs) && name.startsWith("no-")) {
        name = name.slice(3);
        negated = true;
      }
    } else if (/^-[A-Za-z]$/.test(word)) name = byChar.get(word.slice(1));
    if (name === undefined || !Object.hasOwn(specs, name) || given.has(name)) return null;
    const spec = specs[name];
    if (spec === undefined) return null;
    if (spec.kind === "boolean") {
      if (inline !== undefined || (negated && spec.allowNo !== true)) return null;
      given.set(name, !negated);
      continue;
    }
    if (negated) return null;
    const value = inline ?? argv[++i];
    if (value === undefined || !valueOk(spec, value)) return null;
    given.set(name, value);
  }
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const value = given.get(name);
    if (spec.kind === "boolean") out[name] = typeof value === "boolean" ? value : (spec.default ?? false);
    else if (typeof value === "string") out[name] = spec.kind === "integer" ? Number(value) : value;
    else if (spec.required === true) return null;
    else out[name] = spec.default;
  }
  return out as ParsedFlags<F>;
}
