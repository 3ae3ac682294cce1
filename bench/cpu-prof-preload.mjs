/**
 * Loaded into the controller with NODE_OPTIONS=--import (node refuses --cpu-prof there) by
 * `npm run bench:shard-cpu -- --profile DIR`: V8's sampling profiler through node:inspector,
 * driven by files in DIR (PGSCALE_BENCH_PROFILE_DIR), so that only the measured runs are
 * profiled: the benchmark creates DIR/start, this starts the profiler and removes it; DIR/stop
 * stops it and writes DIR/controller-<n>.cpuprofile (n = 1, 2, …). Only the `controller`
 * command is profiled (the CLI's short `up` and `down` are not). Polls every 200 ms, unref'd.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.PGSCALE_BENCH_PROFILE_DIR;
if (dir && process.argv.includes('controller')) {
  const session = new Session();
  session.connect();
  let n = 0;
  let busy = false;
  const post = (method, params) =>
    new Promise((resolve, reject) =>
      session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))),
    );
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      if (existsSync(join(dir, 'start'))) {
        rmSync(join(dir, 'start'), { force: true });
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 200 });
        await post('Profiler.start');
      } else if (existsSync(join(dir, 'stop'))) {
        rmSync(join(dir, 'stop'), { force: true });
        const { profile } = await post('Profiler.stop');
        n += 1;
        const tmp = join(dir, `controller-${n}.tmp`);
        writeFileSync(tmp, JSON.stringify(profile));
        renameSync(tmp, join(dir, `controller-${n}.cpuprofile`));
      }
    } catch (e) {
      process.stderr.write(`cpu-prof-preload: ${e instanceof Error ? e.message : String(e)}\n`);
    } finally {
      busy = false;
    }
  };
  setInterval(() => void tick(), 200).unref();
}
