/**
 * The embedded store's file: its whole state as one JSON document, read once at open and
 * rewritten atomically after every change (write a temporary file, fsync it, rename it over the
 * old one, fsync the directory), so a crash at any moment leaves either the old state or the new
 * one on disk, never a torn file. A file that cannot be read or parsed is an error naming the
 * file: starting empty instead would silently forget who holds the leader lease.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, errorMessage } from '../errors.js';
import { StoreError } from './store.js';

const FORMAT = 'pgscale-state-store';

const fileSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.literal(1),
  /** The store-wide revision of the last change. */
  revision: z.number().int().min(0),
  /** The id the next granted lease gets (ids are never reused). */
  next_lease: z.number().int().min(1),
  /** Leases with their TTL. Deadlines are not stored: they are monotonic-clock values. */
  leases: z.array(z.strictObject({ id: z.string().min(1), ttl_ms: z.number().positive() })),
  /** Arrays rather than objects keyed by name, so that no key (`__proto__`) is special. */
  keys: z.array(
    z.strictObject({
      key: z.string().min(1),
      value: z.string(),
      revision: z.number().int().min(1),
      lease: z.string().nullable(),
    }),
  ),
});

export type StoreFileState = z.infer<typeof fileSchema>;

export const STORE_FILE_FORMAT = FORMAT;

export function emptyState(): StoreFileState {
  return { format: FORMAT, version: 1, revision: 0, next_lease: 1, leases: [], keys: [] };
}

/** Reads the state, or an empty one when the file does not exist yet (the first start). */
export async function readStoreFile(file: string): Promise<StoreFileState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new StoreError(
      ErrorCodes.STORE_UNAVAILABLE,
      `cannot read the state store file ${file}: ${errorMessage(e)}`,
      { cause: e },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, errorMessage(e), e);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt(file, issue ? `${issue.path.join('.') || '(top level)'}: ${issue.message}` : 'invalid');
  }
  const state = parsed.data;
  const leases = new Set<string>();
  for (const l of state.leases) {
    if (leases.has(l.id)) throw corrupt(file, `lease ${l.id} appears twice`);
    if (!/^[1-9]\d*$/.test(l.id) || Number(l.id) >= state.next_lease)
      throw corrupt(file, `lease id ${l.id} is not below next_lease ${state.next_lease}`);
    leases.add(l.id);
  }
  const keys = new Set<string>();
  for (const kv of state.keys) {
    if (keys.has(kv.key)) throw corrupt(file, `key ${kv.key} appears twice`);
    keys.add(kv.key);
    if (kv.revision > state.revision) throw corrupt(file, `key ${kv.key} has a revision above the store's`);
    if (kv.lease !== null && !leases.has(kv.lease))
      throw corrupt(file, `key ${kv.key} is attached to lease ${kv.lease}, which the file does not list`);
  }
  return state;
}

function corrupt(file: string, detail: string, cause?: unknown): StoreError {
  return new StoreError(
    ErrorCodes.STORE_UNAVAILABLE,
    `the state store file ${file} is corrupt (${detail}); move it away to start with an empty store`,
    { cause },
  );
}

/** Writes the state durably: temporary file, fsync, rename, fsync of the directory. */
export async function writeStoreFile(file: string, state: StoreFileState): Promise<void> {
  const text = JSON.stringify(state);
  const tmp = `${file}.tmp`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    const dir = await open(dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (e) {
    throw new StoreError(
      ErrorCodes.STORE_UNAVAILABLE,
      `cannot write the state store file ${file}: ${errorMessage(e)}`,
      { cause: e },
    );
  }
}
