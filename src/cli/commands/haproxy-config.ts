/**
 * `pgscale haproxy-config`: prints a haproxy.cfg for the cluster of pgscale.yaml (a write port to
 * the primary, a read port over the replicas, both checked on the nodes' health endpoints). It
 * only reads the file: no binaries, no running cluster needed.
 */
import { defaultConfigPath, loadConfig } from '../../config/load.js';
import { UsageError } from '../../errors.js';
import { parseLag } from '../../web/health-checks.js';
import { intOption, parse } from '../args.js';
import { out, warnOnce } from '../context.js';
import { HAPROXY_DEFAULTS, renderHaproxyConfig } from '../haproxy-cfg.js';

export const help = `Usage: pgscale haproxy-config [-c FILE] [--write-port P] [--read-port P] [options]

Prints a complete haproxy.cfg for the cluster: a listener for writes whose only healthy server is
the primary (option httpchk GET /primary), and one for reads balanced round-robin over the
streaming replicas (GET /replica?lag=…). HAProxy checks each node on its api_port, where
\`pgscale up\` serves the node's health endpoints (docs/haproxy.md). With several groups, group k
uses the write and read ports plus 2k.

Options:
  -c, --config FILE   pgscale.yaml (default ./pgscale.yaml)
  --write-port P      port for writes (default ${HAPROXY_DEFAULTS.writePort})
  --read-port P       port for reads (default ${HAPROXY_DEFAULTS.readPort})
  --stats-port P      also serve HAProxy's statistics page on this port (default: none)
  --max-lag SIZE      replicas lagging more are left out of reads: bytes or 1024kB, 16MB, 1GB;
                      "off" for no limit (default ${HAPROXY_DEFAULTS.maxLag})
  --bind ADDR         address HAProxy listens on (default ${HAPROXY_DEFAULTS.bind}; * for all)

Example:
  pgscale haproxy-config -c ./c1/pgscale.yaml > haproxy.cfg && haproxy -f haproxy.cfg
`;

export function run(argv: string[]): number {
  const { values } = parse('haproxy-config', argv, {
    'write-port': { type: 'string' },
    'read-port': { type: 'string' },
    'stats-port': { type: 'string' },
    'max-lag': { type: 'string' },
    bind: { type: 'string' },
  });
  if (values.help) return (out(help), 0);
  const file = typeof values.config === 'string' ? values.config : defaultConfigPath();
  const loaded = warnOnce(loadConfig(file));
  if (loaded.config.groups.length === 0) {
    throw new UsageError(`${loaded.file} has no groups: nothing for HAProxy to balance`);
  }
  let maxLag: string | null = HAPROXY_DEFAULTS.maxLag;
  if (typeof values['max-lag'] === 'string') {
    const v = values['max-lag'].trim();
    if (v === 'off') maxLag = null;
    else if (parseLag(v) === null)
      throw new UsageError(
        `--max-lag must be bytes or a size such as 1024kB, 16MB, 1GB (or off), got "${v}"`,
      );
    else maxLag = v;
  }
  const text = renderHaproxyConfig(loaded.config, {
    bind: typeof values.bind === 'string' ? values.bind : HAPROXY_DEFAULTS.bind,
    writePort: intOption('write-port', values['write-port'], 1, 65535) ?? HAPROXY_DEFAULTS.writePort,
    readPort: intOption('read-port', values['read-port'], 1, 65535) ?? HAPROXY_DEFAULTS.readPort,
    statsPort: intOption('stats-port', values['stats-port'], 1, 65535) ?? null,
    maxLag,
    configFile: loaded.file,
  });
  process.stdout.write(text);
  return 0;
}
