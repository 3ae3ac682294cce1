/**
 * A least-recently-used map from statement text to a value, bounded by entry count and by the
 * total length of its keys: the classifier is keyed by the exact SQL text, and 5,000 entries of
 * arbitrary client text must not become gigabytes. A Map keeps insertion order, so re-inserting
 * on a hit moves an entry to the young end and the oldest entry is the first key.
 */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  private chars = 0;

  constructor(
    readonly maxEntries: number,
    /** Upper bound on the summed length of the keys; a key longer than a sixteenth of it is never kept. */
    readonly maxChars: number = 8 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  set(key: string, value: V): void {
    if (this.maxEntries <= 0 || key.length > this.maxChars / 16) return;
    if (this.map.delete(key)) this.chars -= key.length;
    this.map.set(key, value);
    this.chars += key.length;
    while (this.map.size > this.maxEntries || this.chars > this.maxChars) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) break;
      this.map.delete(oldest.value);
      this.chars -= oldest.value.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.chars = 0;
  }
}
