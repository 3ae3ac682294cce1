/**
 * `pgscale proxy`: the proxy alone, in front of any PostgreSQL servers named in the config's
 * `proxy.databases` (a managed database, say) or in an existing pgbouncer.ini. SIGHUP (or RELOAD
 * on the admin console) re-reads the file without dropping clients; SIGINT/SIGTERM stop it.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig, defaultConfigPath } from '../../config/load.js';
import type { ProxyConfig } from '../../config/schema.js';
import { ConfigError, ErrorCodes, UsageError } from '../../errors.js';
import { ProxyServer } from '../../proxy/proxy-server.js';
import { databasesResolver } from '../../proxy/resolver.js';
import { AdminSession } from '../../proxy/admin.js';
import { parse } from '../args.js';
import { out } from '../context.js';

export const help = `Usage: pgscale proxy [-c FILE | --pgbouncer-ini FILE]

Runs the pgscale proxy alone, in front of the servers listed under proxy.databases in FILE
(default ./pgscale.yaml), or of those of an existing PgBouncer configuration.
SIGHUP reloads the configuration; SIGINT or SIGTERM stops the proxy.

Options:
  -c, --config FILE       pgscale.yaml with a proxy section
  --pgbouncer-ini FILE    read a pgbouncer.ini instead ([databases], [pgbouncer])
`;

async function loadProxyConfig(
  values: Record<string, string | boolean | undefined>,
): Promise<{ config: ProxyConfig; warnings: string[] }> {
  if (typeof values['pgbouncer-ini'] === 'string') {
    const file = resolve(values['pgbouncer-ini']);
    const mod = await import('../../config/pgbouncer-ini.js');
    const r = mod.loadPgbouncerIni(file);
    return { config: r.config, warnings: r.warnings };
  }
  const file = typeof values.config === 'string' ? values.config : defaultConfigPath();
  const loaded = loadConfig(file);
  if (Object.keys(loaded.config.proxy.databases).length === 0) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `${loaded.file}: proxy.databases is empty: the standalone proxy needs at least one server (or use pgscale up)`,
    );
  }
  return { config: loaded.config.proxy, warnings: [] };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('proxy', argv, { 'pgbouncer-ini': { type: 'string' } });
  if (values.help) return (out(help), 0);
  if (values['pgbouncer-ini'] !== undefined && values.config !== undefined) {
    throw new UsageError('give either -c FILE or --pgbouncer-ini FILE, not both');
  }
  if (
    values['pgbouncer-ini'] === undefined &&
    values.config === undefined &&
    !existsSync(defaultConfigPath())
  ) {
    throw new UsageError('no configuration: pass -c FILE or --pgbouncer-ini FILE');
  }
  const { config, warnings } = await loadProxyConfig(values);
  for (const w of warnings) process.stderr.write(`pgscale proxy: warning: ${w}\n`);
  const proxy = new ProxyServer({ config, resolve: databasesResolver(config), log: (l) => out(l) });
  const reload = async (): Promise<string[]> => {
    const next = await loadProxyConfig(values);
    for (const w of next.warnings) process.stderr.write(`pgscale proxy: warning: ${w}\n`);
    const restart = proxy.reload(next.config, databasesResolver(next.config));
    out(`configuration reloaded${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}`);
    return restart;
  };
  const a = await proxy.start();
  out(`pgscale proxy ready on ${a.host}:${a.port}`);
  return new Promise((resolvePromise) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      out(`${why}: stopping the proxy`);
      void proxy.stop().then(() => resolvePromise(0));
    };
    AdminSession.hooks = { reload, shutdown: () => stop('SHUTDOWN') };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGHUP', () => {
      reload().catch((e: unknown) =>
        process.stderr.write(
          `pgscale proxy: reload failed, keeping the old configuration: ${(e as Error).message}\n`,
        ),
      );
    });
  });
}
