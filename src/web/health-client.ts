/**
 * The client side of a controller's GET /health, for the CLI (waiting for a detached controller)
 * and the demo (waiting for its own).
 */
import { get } from 'node:http';

/** GET /health of a controller; null when nothing (or something else) answers. */
export function health(
  host: string,
  port: number,
  timeoutMs = 1000,
): Promise<{ status: string; pid: number } | null> {
  return new Promise((resolve) => {
    const req = get({ host, port, path: '/health', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as { status: string; pid: number });
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}
