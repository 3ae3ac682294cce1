/**
 * A least-recently-used map from statement text to a value, bounded by entry count and by the
 * total length of its keys: the classifier is keyed by the exact SQL text, and 5,000 entries of
 * arbitrary client text must not become gigabytes. A Map keeps insertion order, so re-inserting
 * on a hit moves an entry to the young end and the oldest entry is the first key.
 */
export class LruCache<V> {
  private readonly map = new Map<string, V>();
  private chars = 0;
  /**
   * Walks the keys oldest first, kept across evictions. A fresh `keys()` per eviction would step
   * over every entry deleted at the front since the table was last rebuilt (evicted, or moved to
   * the young end by a hit): under churn, thousands of holes per eviction (3.5 µs a miss at 5,000
   * entries). A live iterator passes each hole once: everything behind it has been evicted, and
   * entries moved by a hit are re-inserted ahead of it.
   */
  private evictor: Iterator<string> | null = null;

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
      let oldest = (this.evictor ??= this.map.keys()).next();
      if (oldest.done === true) {
        // A finished iterator stays finished: start again from the (new) oldest entry.
        this.evictor = this.map.keys();
        oldest = this.evictor.next();
        if (oldest.done === true) break;
      }
      this.map.delete(oldest.value);
      this.chars -= oldest.value.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.chars = 0;
    this.evictor = null;
  }
}
