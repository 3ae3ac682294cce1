/** The proxy's TLS certificate and key for clients (proxy.tls), loaded at start and at reload. */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { ProxyConfig } from '../../config/schema.js';
import { ConfigError, ErrorCodes } from '../../errors.js';

export function loadTls(c: ProxyConfig): SecureContext | null {
  if (c.tls.mode === 'disable') return null;
  if (!c.tls.cert_file || !c.tls.key_file) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `proxy.tls.mode ${c.tls.mode} needs proxy.tls.cert_file and proxy.tls.key_file`,
    );
  }
  try {
    return createSecureContext({
      cert: readFileSync(c.tls.cert_file),
      key: readFileSync(c.tls.key_file),
      minVersion: 'TLSv1.2',
    });
  } catch (e) {
    throw new ConfigError(
      ErrorCodes.CONFIG_INVALID,
      `proxy.tls: cannot load the certificate or key: ${(e as Error).message}`,
    );
  }
}
