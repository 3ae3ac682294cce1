/**
 * What the controller runs besides the PostgreSQL nodes: the proxy, later the HA agents, each a
 * Service. The controller starts them in the order they were added, after the cluster is up and
 * before the HTTP API, and stops them in reverse order before it stops the nodes. status() is
 * what GET /services shows for the service (plain JSON; secret-named keys are redacted anyway).
 */
export interface Service {
  /** Unique among the controller's services; names the service in logs and GET /services. */
  readonly name: string;
  /** Resolves once the service works (e.g. listens); a rejection aborts the controller's start. */
  start(): Promise<void>;
  /**
   * Resolves once the service has released everything. Also called after its own start() failed,
   * so it must cope with a half-started or already stopped service.
   */
  stop(): Promise<void>;
  status?(): unknown;
  /**
   * What keeps a running service from doing its work right now (the proxy's listener closed and
   * is being reopened, say), or null. The controller shows the service as `degraded` in GET
   * /services and answers GET /health with 503 `degraded` while there is one.
   */
  problem?(): string | null;
  /** Re-reads its configuration (SIGHUP); returns the settings that need a restart. */
  reload?(): Promise<string[]>;
  /** Checks what would make start() fail at once (a port in use), before anything is started. */
  preflight?(): Promise<void>;
  /**
   * HTTP endpoints of the service (under /ha/ for now): null when the path is not its own.
   * Anything but GET arrives only with the controller's token checked.
   */
  handle?(
    method: string,
    path: string,
    body: unknown,
    query: URLSearchParams,
  ): Promise<{ status: number; body: unknown } | null>;
}

export type ServiceState =
  'registered' | 'starting' | 'running' | 'degraded' | 'stopping' | 'stopped' | 'failed';
