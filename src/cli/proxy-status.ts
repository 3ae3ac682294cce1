/**
 * The proxy's line in `pgscale status`: what the running controller's GET /services says about
 * its proxy service (listening or not, restarts of its listener). Null when there is no
 * controller, no proxy service, or the controller does not answer within the timeout.
 */
import { get } from 'node:http';
import { localHost } from '../web/http-api.js';
import type { ControllerInfo } from '../web/status-report.js';

interface ProxyReport {
  name: string;
  state: string;
  error?: string;
  status: { listening?: boolean; listen?: string; restarts?: number; last_restart?: string | null } | null;
}

export interface ProxyLine {
  line: string;
  /** The proxy does not accept connections. */
  bad: boolean;
}

export async function proxyStatusLine(c: ControllerInfo | null, timeoutMs = 2000): Promise<ProxyLine | null> {
  if (!c) return null;
  const host = localHost(c.http.host);
  const body = await new Promise<string | null>((resolve) => {
    const req = get({ host, port: c.http.port, path: '/services', timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve(res.statusCode === 200 ? text : null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
  if (body === null) return null;
  let services: ProxyReport[];
  try {
    services = (JSON.parse(body) as { services: ProxyReport[] }).services;
  } catch {
    return null;
  }
  const p = services.find((s) => s.name === 'proxy');
  if (!p) return null;
  const where = p.status?.listen ?? '?';
  if (p.state !== 'running' || p.status?.listening !== true) {
    return {
      line: `proxy: NOT LISTENING on ${where} (${p.state})${p.error ? `: ${p.error}` : ''}`,
      bad: true,
    };
  }
  const n = p.status.restarts ?? 0;
  const restarted =
    n > 0 ? ` (restarted ${n} time${n === 1 ? '' : 's'}, last at ${p.status.last_restart ?? '?'})` : '';
  return { line: `proxy: listening on ${where}${restarted}`, bad: false };
}
