/**
 * `pgscale dashboard [--open]`: prints the URL of the running controller's live dashboard
 * (docs/dashboard.md), and with --open hands it to xdg-open when there is a display to show it
 * on; without one it only prints, saying why.
 */
import { spawn } from 'node:child_process';
import { liveController } from '../../controller/controller-file.js';
import { ClusterError, ErrorCodes } from '../../errors.js';
import { localHost, url } from '../../web/http-api.js';
import { parse } from '../args.js';
import { openCluster, out } from '../context.js';

export const help = `Usage: pgscale dashboard [-c FILE] [--open]

Prints the URL of the live dashboard the running controller serves (GET /dashboard on its HTTP
API, http.listen:http.port, 127.0.0.1:8008 by default): groups and nodes, the shard map and
moves, pools, throughput and latency over the last 5 minutes, the HA history. It updates itself
within a second of a change and is read-only. --open also opens it with xdg-open when a display
is available (DISPLAY or WAYLAND_DISPLAY); otherwise the URL is only printed.
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('dashboard', argv, { open: { type: 'boolean' } });
  if (values.help) return (out(help), 0);
  const cluster = openCluster(values);
  const c = liveController(cluster.dataDir);
  if (!c) {
    throw new ClusterError(
      ErrorCodes.USAGE,
      `no controller runs for cluster "${cluster.config.cluster.name}"; the dashboard is served by it: start it with \`pgscale up --detach\``,
    );
  }
  const link = `${url(localHost(c.http.host), c.http.port)}/dashboard`;
  out(link);
  if (values.open !== true) return 0;
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    process.stderr.write('no display (DISPLAY, WAYLAND_DISPLAY): open the URL above in a browser\n');
    return 0;
  }
  return new Promise<number>((resolve) => {
    const child = spawn('xdg-open', [link], { stdio: 'ignore', detached: true });
    child.on('error', (e) => {
      process.stderr.write(`could not run xdg-open (${e.message}): open the URL above in a browser\n`);
      resolve(0);
    });
    child.on('spawn', () => {
      child.unref();
      resolve(0);
    });
  });
}
