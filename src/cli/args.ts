/**
 * Argument parsing shared by every command: node's util.parseArgs with the common `-c FILE` and
 * `--help`, and usage errors that name the problem and the command's help.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export const common: Options = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
};

export function parse(
  command: string,
  argv: string[],
  options: Options,
  allowPositionals = 0,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({
      args: argv,
      options: { ...common, ...options },
      allowPositionals: true,
      strict: true,
    });
    if (r.positionals.length > allowPositionals) {
      throw new UsageError(
        `unexpected argument "${r.positionals[allowPositionals]}" (see pgscale ${command} --help)`,
      );
    }
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `${(e as Error).message.replace(/\. To specify.*$/s, '')} (see pgscale ${command} --help)`,
    );
  }
}

export function intOption(
  name: string,
  v: string | boolean | undefined,
  min: number,
  max: number,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${String(v)}"`);
  }
  return n;
}

/**
 * An option that was renamed (`--shard` became `--group` when replication shards were renamed
 * groups): the old spelling is still taken, with a warning on stderr naming the new one; both at
 * once is a usage error. Returns the value under the new name.
 */
export function renamedOption(
  values: Record<string, string | boolean | undefined>,
  name: string,
  old: string,
): string | boolean | undefined {
  if (values[old] === undefined) return values[name];
  if (values[name] !== undefined) {
    throw new UsageError(
      `--${old} is the old name of --${name}, and --${name} is given too; keep only --${name}`,
    );
  }
  process.stderr.write(
    `warning: --${old} is the old name of --${name}: use --${name} (--${old} is still read, for now)\n`,
  );
  return values[old];
}
