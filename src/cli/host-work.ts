/**
 * The sharding host's statements on several groups and COPYs while they run: a shard move's
 * hold (proxy/shard-hold.ts) waits for those started before it, as for the sessions' statements
 * in flight. A COPY counts until its data has all gone (finish or abort), not only its start.
 */
import type { CopyInStart } from '../sharding/copy-in.js';
import type { HeldLeg } from '../proxy/shard-hold.js';

interface Mark extends HeldLeg {
  idle: boolean;
}

export class HostWork {
  private readonly marks = new Set<Mark>();

  /** What runs now, as legs a hold can wait on. */
  running(): HeldLeg[] {
    return [...this.marks];
  }

  private mark(): () => void {
    const m: Mark = { group: '*', idle: false };
    this.marks.add(m);
    return () => {
      m.idle = true;
      this.marks.delete(m);
    };
  }

  /** `work` counted while it runs. */
  counted<T>(work: () => Promise<T>): Promise<T> {
    const done = this.mark();
    const p = work();
    p.then(done, done);
    return p;
  }

  /** A COPY split by row, counted until its stream finishes or aborts. */
  async countedCopy(start: () => Promise<CopyInStart>): Promise<CopyInStart> {
    const done = this.mark();
    try {
      const s = await start();
      if (!s.ok) {
        done();
        return s;
      }
      const { stream } = s;
      const finish = stream.finish.bind(stream);
      const abort = stream.abort.bind(stream);
      stream.finish = () => finish().finally(done);
      stream.abort = (m, e) => abort(m, e).finally(done);
      return s;
    } catch (e) {
      done();
      throw e;
    }
  }
}
