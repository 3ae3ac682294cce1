/**
 * A least-recently-used map from statement text to a value, bounded by entry count and by the
 * total length of its keys: the classifier is keyed by the exact SQL text, and 5,000 entries of
 * arbitrary client text must not become gigabytes. The recency order is a doubly linked list
 * through the entries; the Map only finds them, and changes only when an entry comes or goes.
 *
 * Not a Map re-inserted on every hit (delete + set moves a key to the young end of a Map's
 * insertion order): V8's ordered hash table leaves the deleted entry in its bucket's chain until
 * the table is rebuilt, so a key hit again and again grows its own chain by one entry per hit,
 * and each lookup walks it. With 5,000 entries a hit cost about 10 µs (the slots left before a
 * rebuild, divided among the hot keys), 1,000 times a lookup's cost.
 */

interface Entry<V> {
  readonly key: string;
  value: V;
  /** Towards the oldest. */
  older: Entry<V> | null;
  /** Towards the youngest. */
  younger: Entry<V> | null;
}

export class LruCache<V> {
  private readonly map = new Map<string, Entry<V>>();
  private chars = 0;
  private oldest: Entry<V> | null = null;
  private youngest: Entry<V> | null = null;

  constructor(
    readonly maxEntries: number,
    /** Upper bound on the summed length of the keys; a key longer than a sixteenth of it is never kept. */
    readonly maxChars: number = 8 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e !== this.youngest) {
      this.unlink(e);
      this.append(e);
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (this.maxEntries <= 0 || key.length > this.maxChars / 16) return;
    const known = this.map.get(key);
    if (known !== undefined) {
      known.value = value;
      if (known !== this.youngest) {
        this.unlink(known);
        this.append(known);
      }
      return;
    }
    const e: Entry<V> = { key, value, older: null, younger: null };
    this.map.set(key, e);
    this.append(e);
    this.chars += key.length;
    while (this.map.size > this.maxEntries || this.chars > this.maxChars) {
      const old = this.oldest;
      if (old === null) break;
      this.unlink(old);
      this.map.delete(old.key);
      this.chars -= old.key.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.chars = 0;
    this.oldest = null;
    this.youngest = null;
  }

  private unlink(e: Entry<V>): void {
    if (e.older !== null) e.older.younger = e.younger;
    else this.oldest = e.younger;
    if (e.younger !== null) e.younger.older = e.older;
    else this.youngest = e.older;
    e.older = null;
    e.younger = null;
  }

  private append(e: Entry<V>): void {
    e.older = this.youngest;
    e.younger = null;
    if (this.youngest !== null) this.youngest.younger = e;
    else this.oldest = e;
    this.youngest = e;
  }
}
