/**
 * A pgscale cluster on this host: groups, each a primary with streaming standbys, provisioned and
 * run from the validated config. Every operation checks first and acts second, so a bad config, a
 * port in use or a foreign data directory stops it before anything changes; every operation is
 * idempotent, so running `up` twice is harmless. Which node of a group is the primary is read from
 * the data directories (the one without standby.signal), never assumed from the config order.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedConfig, NodeRef } from '../config/load.js';
import { allNodes, loadConfig } from '../config/load.js';
import { ClusterError, ErrorCodes } from '../errors.js';
import type { PgBinaries } from './binaries.js';
import { findBinaries } from './binaries.js';
import { cloneStandby, dropSlotIfIdle } from './clone.js';
import {
  ARCHIVE_SCRIPT,
  primaryConninfo,
  renderHba,
  renderNodeConf,
  slotName,
  sslParams,
  type ClientPair,
  writeNodeFiles,
  writeStandbySettings,
} from './conf.js';
import type { InstancePaths } from './instance.js';
import {
  clearOrphanedServer,
  REJOIN_MARKER,
  initdb,
  instancePaths,
  isEmptyOrMissing,
  isProvisioned,
  isStandbyDir,
  killServerTree,
  pidAlive,
  postmasterPidOf,
  reload,
  runningPid,
  start,
  stop,
  writeFenceMarkers,
  writeMarker,
} from './instance.js';
import { portInUse } from './ports.js';
import { chownToService, ensureOwnedDir, serviceUser } from './run-as.js';
import type { Secrets } from './secrets.js';
import {
  ensureSecrets,
  passfilePath,
  loadOrCreateSecrets,
  readSecrets,
  removeFile,
  writeInitdbPwfile,
  writePassfile,
} from './secrets.js';
import type { ConnTarget } from './sql.js';
import { withClient } from './sql.js';
import { bootstrapRoles } from './bootstrap-roles.js';
import type { UsersContext } from './bootstrap-roles.js';
import { generatedUsers, userPassword } from './user-secrets.js';
import { preflightCluster, preflightNewGroup } from './preflight.js';
import { rewindDataDir } from './rewind.js';
import type { Pgbackrest } from './pgbackrest.js';
import {
  ensureStanza,
  pgbackrestCommands,
  pgbackrestFor,
  stanzaName,
  writePgbackrestConf,
} from './pgbackrest.js';
import { ClusterTls } from './tls.js';
import type { NodeStatus } from './status.js';
import { nodeStatuses } from './status.js';

export { REJOIN_MARKER } from './instance.js';

export interface Reporter {
  step(message: string): void;
}

export const silentReporter: Reporter = { step: () => undefined };

interface ClusterIdentity {
  id: string;
  name: string;
  created_at: string;
}

export class Cluster {
  readonly bins: PgBinaries;
  /** The postmaster pid of each node's last stop that this Cluster asked for. */
  private readonly planned = new Map<string, number>();
  /** Told as soon as a stop this Cluster asked for has ended a postmaster (see onPlannedStop). */
  private readonly stopListeners = new Set<(name: string, pid: number) => void>();

  private current: LoadedConfig;

  constructor(
    loaded: LoadedConfig,
    private readonly reporter: Reporter = silentReporter,
    bins?: PgBinaries,
  ) {
    this.current = loaded;
    this.bins = bins ?? findBinaries(loaded.config.postgres.bin_dir);
  }

  get loaded(): LoadedConfig {
    return this.current;
  }

  get config() {
    return this.current.config;
  }

  /**
   * Re-reads the nodes (the `groups` section) from the config file, keeping every other setting
   * as loaded: what a running controller does when add-replica, remove-replica, add-group or
   * remove-group changed them. Groups are numbered by position, so a group can only come or go
   * at the end: the groups kept must be the same groups (their first node's name says so).
   * Returns the names added and removed, and how many groups there were and are.
   */
  reloadMembers(): { added: string[]; removed: string[]; groups: { before: number; after: number } } {
    const fresh = loadConfig(this.current.file).config;
    const kept = Math.min(fresh.groups.length, this.config.groups.length);
    if (fresh.groups.length === 0) {
      throw new ClusterError(ErrorCodes.CONFIG_INVALID, `${this.current.file} now names no groups`);
    }
    for (let g = 0; g < kept; g++) {
      const was = new Set(this.config.groups[g]!.nodes.map((n) => n.name));
      if (!fresh.groups[g]!.nodes.some((n) => was.has(n.name))) {
        throw new ClusterError(
          ErrorCodes.CONFIG_INVALID,
          `${this.current.file}: group ${g} shares no node with the group ${g} running now; ` +
            'groups are numbered by position, so only the last one can be added or removed',
        );
      }
    }
    const before = new Set(this.nodes().map((n) => n.name));
    const groupsBefore = this.config.groups.length;
    this.current = { ...this.current, config: { ...this.current.config, groups: fresh.groups } };
    const after = new Set(this.nodes().map((n) => n.name));
    return {
      added: [...after].filter((n) => !before.has(n)),
      removed: [...before].filter((n) => !after.has(n)),
      groups: { before: groupsBefore, after: fresh.groups.length },
    };
  }

  /**
   * Takes in a whole new version of the config (a reload whose changes config-diff.ts allowed:
   * the nodes, names and directories are the running ones). What is rendered from it reaches the
   * nodes with refreshConf().
   */
  replaceConfig(loaded: LoadedConfig): void {
    this.current = loaded;
  }

  get dataDir() {
    return this.loaded.dataDir;
  }

  nodes(): NodeRef[] {
    return allNodes(this.config);
  }

  paths(node: string): InstancePaths {
    return instancePaths(this.dataDir, node);
  }

  archiveDir(group: number): string {
    return join(this.dataDir, 'archive', `shard${group}`);
  }

  private archiveScript(): string {
    return join(this.dataDir, 'bin', 'pgscale-archive');
  }

  /** pgBackRest when it archives and backs up this cluster (backup.enabled, installed), else null. */
  pgbackrest(): Pgbackrest | null {
    return pgbackrestFor(this.current, this.bins.major);
  }

  /**
   * The group's pgBackRest stanza, created once its primary runs (nothing without pgBackRest). A
   * repository that cannot be reached does not keep the cluster from running: archiving fails
   * (and shows in status) until it can, and the next `up` tries again.
   */
  private async ensureStanza(group: number): Promise<void> {
    const p = this.pgbackrest();
    if (!p) return;
    const stanza = stanzaName(this.config.cluster.name, group);
    try {
      await ensureStanza(p, this.current, group);
      this.reporter.step(`pgBackRest stanza ${stanza} ready`);
    } catch (e) {
      this.reporter.step(
        `pgBackRest stanza ${stanza} could not be created; WAL archiving fails until it is: ${(e as Error).message}`,
      );
    }
  }

  private passfile(): string {
    return join(this.dataDir, 'secrets', 'pgpass');
  }

  /** The cluster's TLS between its parts (cluster.tls; tls.ts). */
  get tls(): ClusterTls {
    return new ClusterTls(this.current);
  }

  /** The cluster CA's certificate that verifies the nodes when cluster.tls is on, else null. */
  rootCert(): string | null {
    const tls = this.tls;
    return tls.enabled ? tls.rootCert : null;
  }

  /**
   * Makes `n` a standby of `primary` in its data directory: primary_conninfo (over verified TLS
   * when cluster.tls is on) and its slot in postgresql.auto.conf, and standby.signal.
   */
  private writeFollow(n: NodeRef, primary: NodeRef): void {
    const { pgdata } = this.paths(n.name);
    writeStandbySettings(
      pgdata,
      primaryConninfo(primary, n.name, this.passfile(), this.rootCert(), this.clientPair(n)),
      slotName(n.name),
    );
    for (const f of ['postgresql.auto.conf', 'standby.signal']) chownToService(join(pgdata, f));
  }

  secrets(): Secrets {
    const s = readSecrets(this.dataDir);
    if (!s) {
      throw new ClusterError(
        ErrorCodes.NODE_NOT_FOUND,
        `the cluster in ${this.dataDir} has not been created yet; run \`pgscale up\` first`,
      );
    }
    return s;
  }

  /** Superuser connection to a node. */
  target(n: { host: string; port: number }, database = 'postgres'): ConnTarget {
    return {
      host: n.host,
      port: n.port,
      user: this.config.postgres.superuser,
      password: this.secrets().superuser,
      database,
      ...this.sslTarget(),
    };
  }

  /** The node's own certificate and key (issued when missing), its client certificate; none without TLS. */
  private clientPair(n: NodeRef): ClientPair | undefined {
    const tls = this.tls;
    return tls.enabled ? tls.nodeFiles(n, (m) => this.reporter.step(m)) : undefined;
  }

  private sslTarget(): { sslRootCert?: string } {
    const root = this.rootCert();
    return root ? { sslRootCert: root } : {};
  }

  identity(): ClusterIdentity | null {
    try {
      return JSON.parse(readFileSync(join(this.dataDir, 'cluster.json'), 'utf8')) as ClusterIdentity;
    } catch {
      return null;
    }
  }

  /** The primary of a group as the data directories say; null when none is provisioned. */
  primaryOf(group: number): NodeRef | null {
    const provisioned = this.nodes().filter(
      (n) => n.group === group && isProvisioned(this.paths(n.name).pgdata),
    );
    const primaries = provisioned.filter((n) => !isStandbyDir(this.paths(n.name).pgdata));
    if (primaries.length > 1) {
      throw new ClusterError(
        ErrorCodes.NO_PRIMARY,
        `group ${group} has more than one primary data directory (${primaries.map((p) => p.name).join(', ')}); ` +
          'refusing to run them side by side. Turn the stale one into a standby or remove it.',
      );
    }
    if (primaries.length === 0 && provisioned.length > 0) {
      throw new ClusterError(
        ErrorCodes.NO_PRIMARY,
        `group ${group} has standbys (${provisioned.map((p) => p.name).join(', ')}) but no primary data directory`,
      );
    }
    return primaries[0] ?? null;
  }

  // ---------------------------------------------------------------- checks

  /** Everything that can be known before acting; throws naming the first problems found (preflight.ts). */
  async preflight(): Promise<void> {
    await preflightCluster(this);
  }

  // ---------------------------------------------------------------- up

  async up(opts: { waitStreamingMs?: number } = {}): Promise<void> {
    await this.preflight();
    const secrets = this.prepareDirs();
    for (let group = 0; group < this.config.groups.length; group++) {
      await this.upGroup(group, secrets);
      await this.ensureStanza(group);
    }
    await this.waitStreaming(opts.waitStreamingMs ?? 120_000);
    // Now that standbys stream, synchronous_standby_names can name them without blocking commits.
    for (let group = 0; group < this.config.groups.length; group++) await this.refreshConf(group);
  }

  private prepareDirs(): Secrets {
    const root = this.dataDir;
    mkdirSync(root, { recursive: true });
    // The service user must traverse the root but not list it; secrets.json stays ours only.
    if (serviceUser()) chmodSync(root, 0o711);
    if (!this.identity()) {
      const ident: ClusterIdentity = {
        id: randomUUID(),
        name: this.config.cluster.name,
        created_at: new Date().toISOString(),
      };
      writeFileSync(join(root, 'cluster.json'), JSON.stringify(ident, null, 2) + '\n');
    }
    const secrets = ensureSecrets(root, loadOrCreateSecrets(root), generatedUsers(this.loaded));
    if (this.tls.enabled) this.tls.ensureCa();
    ensureOwnedDir(join(root, 'nodes'), 0o700);
    ensureOwnedDir(join(root, 'logs'), 0o750);
    ensureOwnedDir(join(root, 'archive'), 0o700);
    for (let s = 0; s < this.config.groups.length; s++) ensureOwnedDir(this.archiveDir(s), 0o700);
    mkdirSync(join(root, 'bin'), { recursive: true, mode: 0o755 });
    writeFileSync(this.archiveScript(), ARCHIVE_SCRIPT, { mode: 0o755 });
    chmodSync(join(root, 'bin'), 0o755);
    writePassfile(root, this.config.postgres.superuser, secrets);
    return secrets;
  }

  private async upGroup(group: number, secrets: Secrets): Promise<void> {
    const nodes = this.nodes().filter((n) => n.group === group);
    let primary = this.primaryOf(group);
    const fresh = primary === null;
    if (!primary) {
      primary = nodes[0]!;
      await this.initPrimary(primary, secrets);
    }
    await this.startNode(primary, fresh ? [] : this.standbyNames(group, primary.name));
    await bootstrapRoles(
      this.config,
      secrets,
      (db) => this.target(primary, db),
      this.reporter,
      this.usersContext(group, secrets),
    );
    for (const n of nodes) {
      if (n.name === primary.name) continue;
      if (this.needsRejoin(n)) {
        // A fenced former primary: its WAL may hold commits the new primary never had, so it must
        // not run (not even read-only) until HA has rewound it.
        this.reporter.step(`${n.name} is a former primary; high availability rejoins it with pg_rewind`);
        continue;
      }
      if (!isProvisioned(this.paths(n.name).pgdata)) await this.cloneNode(n, primary);
      else this.refreshConninfo(n, primary);
      await this.startNode(n, []);
    }
  }

  /**
   * A standby that follows `primary` gets primary_conninfo as the config says now: turning
   * cluster.tls on (or off) reaches the standbys at the next `up`, not only at their next repoint.
   */
  private refreshConninfo(n: NodeRef, primary: NodeRef): void {
    const up = this.upstreamOf(n);
    if (!up || up.host !== primary.host || up.port !== primary.port) return;
    this.writeFollow(n, primary);
  }

  /** The data directory's shared parts (identity, secrets, archive, passfile), made if missing. */
  prepareLocal(): void {
    this.prepareDirs();
  }

  /**
   * One host's part of `up` for a node, with several hosts (`pgscale agent`): the group's first
   * primary is created (initdb, roles) and started; a standby is cloned from `primary` over the
   * network and started. A node already provisioned is left to high availability.
   */
  async upLocalNode(n: NodeRef, primary: NodeRef | null): Promise<void> {
    const secrets = this.prepareDirs();
    if (isProvisioned(this.paths(n.name).pgdata)) return;
    if (primary === null) {
      await this.initPrimary(n, secrets);
      await this.startNode(n, []);
      await bootstrapRoles(
        this.config,
        secrets,
        (db) => this.target(n, db),
        this.reporter,
        this.usersContext(n.group, secrets),
      );
      return;
    }
    await this.cloneNode(n, primary);
    await this.startNode(n, []);
  }

  /**
   * The declared users and databases made, or brought up to date, on every group's primary, as
   * `up` does (a reload that changed users: or databases:). New passwords go to secrets.json.
   */
  async applyUsers(): Promise<void> {
    const secrets = this.prepareDirs();
    for (let g = 0; g < this.config.groups.length; g++) {
      const primary = this.primaryOf(g);
      if (!primary) continue;
      await bootstrapRoles(
        this.config,
        secrets,
        (db) => this.target(primary, db),
        this.reporter,
        this.usersContext(g, secrets),
      );
    }
  }

  /** What bootstrapRoles needs for the declared users and databases of `group`. */
  private usersContext(group: number, secrets: Secrets): UsersContext {
    return { group, passwordOf: (u) => userPassword(this.loaded, secrets, u) };
  }

  private standbyNames(group: number, primary: string): string[] {
    return this.nodes()
      .filter((n) => n.group === group && n.name !== primary)
      .map((n) => n.name);
  }

  private async initPrimary(n: NodeRef, secrets: Secrets): Promise<void> {
    const { pgdata } = this.paths(n.name);
    this.reporter.step(`initialising ${n.name} (PostgreSQL ${this.bins.version}, ${this.bins.source})`);
    ensureOwnedDir(pgdata, 0o700);
    const pwfile = writeInitdbPwfile(this.dataDir, secrets);
    try {
      await initdb(this.bins, pgdata, {
        superuser: this.config.postgres.superuser,
        pwfile,
        locale: this.config.postgres.locale,
      });
    } catch (e) {
      rmSync(pgdata, { recursive: true, force: true });
      throw e;
    } finally {
      removeFile(pwfile);
    }
    this.mark(n);
  }

  private mark(n: NodeRef): void {
    const { pgdata } = this.paths(n.name);
    writeMarker(pgdata, { cluster_id: this.identity()!.id, cluster: this.config.cluster.name, node: n.name });
    chownToService(join(pgdata, 'pgscale-node.json'));
  }

  private writeConf(n: NodeRef, peers: readonly string[]): void {
    const { pgdata } = this.paths(n.name);
    const pb = this.pgbackrest();
    if (pb) writePgbackrestConf(this.current);
    writeNodeFiles(
      pgdata,
      renderNodeConf({
        config: this.config,
        node: n,
        bins: this.bins,
        archiveDir: this.archiveDir(n.group),
        archiveScript: this.archiveScript(),
        peers,
        tls: this.tls.enabled ? this.tls.nodeFiles(n, (m) => this.reporter.step(m)) : null,
        pgbackrest: pb
          ? pgbackrestCommands(pb, this.dataDir, stanzaName(this.config.cluster.name, n.group), pgdata)
          : null,
      }),
      renderHba(this.config, n.host),
    );
    for (const f of ['pgscale.conf', 'pg_hba.conf', 'postgresql.conf']) chownToService(join(pgdata, f));
  }

  private async startNode(n: NodeRef, peers: readonly string[]): Promise<void> {
    const paths = this.paths(n.name);
    const standby = isStandbyDir(paths.pgdata);
    this.writeConf(n, standby ? [] : peers);
    if (runningPid(paths.pgdata) !== null) {
      await reload(this.bins, paths.pgdata);
      return;
    }
    // A shard move's subscription on this node reads the passwords and the CA from here (several
    // hosts: the mover, on another host, cannot name files of this one).
    const ca = this.rootCert();
    const pid = await start(this.bins, paths, n.name, undefined, {
      PGPASSFILE: passfilePath(this.dataDir),
      ...(ca ? { PGSSLROOTCERT: ca } : {}),
    });
    this.reporter.step(
      `started ${n.name} as ${standby ? 'replica' : 'primary'} on ${n.host}:${n.port} (pid ${pid})`,
    );
  }

  /** Rewrites the conf of every running node of a group and reloads (e.g. synchronous names). */
  async refreshConf(group: number): Promise<void> {
    const primary = this.primaryOf(group);
    if (!primary) return;
    for (const n of this.nodes().filter((x) => x.group === group)) {
      const { pgdata } = this.paths(n.name);
      if (!isProvisioned(pgdata)) continue;
      this.writeConf(n, n.name === primary.name ? this.standbyNames(group, primary.name) : []);
      await reload(this.bins, pgdata);
    }
  }

  private async cloneNode(n: NodeRef, primary: NodeRef): Promise<void> {
    const { pgdata } = this.paths(n.name);
    rmSync(pgdata, { recursive: true, force: true });
    this.reporter.step(`cloning ${n.name} from ${primary.name}`);
    const t0 = Date.now();
    const how = await cloneStandby({
      bins: this.bins,
      primary: { ...this.target(primary), pgdata: this.paths(primary.name).pgdata },
      target: pgdata,
      slot: slotName(n.name),
      passfile: this.passfile(),
      appName: n.name,
      rootCert: this.rootCert(),
      client: this.clientPair(n),
    }).catch((e: unknown) => {
      rmSync(pgdata, { recursive: true, force: true });
      throw e;
    });
    rmSync(join(pgdata, 'pgscale.conf'), { force: true });
    this.writeFollow(n, primary);
    this.mark(n);
    this.reporter.step(`cloned ${n.name} with ${how} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  /** Waits until every provisioned standby streams from its primary. */
  async waitStreaming(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let pending: NodeStatus[] = [];
    while (Date.now() < deadline) {
      const st = await this.status();
      pending = st.filter(
        (s) =>
          s.role === 'replica' &&
          !s.streaming &&
          !this.needsRejoin(this.nodes().find((n) => n.name === s.name)!),
      );
      if (pending.length === 0) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new ClusterError(
      ErrorCodes.TIMEOUT,
      `standbys not streaming after ${timeoutMs / 1000} s: ${pending
        .map((p) => `${p.name} (${p.state}${p.error ? `: ${p.error}` : ''}; log ${this.paths(p.name).log})`)
        .join(', ')}`,
    );
  }

  // ---------------------------------------------------------------- status, down, destroy

  async status(): Promise<NodeStatus[]> {
    const secrets = readSecrets(this.dataDir);
    return nodeStatuses(this.nodes(), this.dataDir, (n) => ({
      host: n.host,
      port: n.port,
      user: this.config.postgres.superuser,
      password: secrets?.superuser ?? '',
      ...this.sslTarget(),
    }));
  }

  /**
   * Stops every node with a fast shutdown: each group's primary first, so that its standbys
   * receive the shutdown checkpoint and restart consistent with it.
   */
  async down(): Promise<string[]> {
    const stopped: string[] = [];
    for (let group = 0; group < this.config.groups.length; group++)
      stopped.push(...(await this.stopGroup(group)));
    return stopped;
  }

  /** Stops the running nodes of a group, its primary first (fast shutdown); returns their names. */
  async stopGroup(group: number): Promise<string[]> {
    const stopped: string[] = [];
    const nodes = this.nodes().filter((n) => n.group === group);
    let primary: NodeRef | null = null;
    try {
      primary = this.primaryOf(group);
    } catch {
      primary = null;
    }
    const order = [...nodes].sort((a, b) =>
      a.name === primary?.name ? -1 : b.name === primary?.name ? 1 : 0,
    );
    for (const n of order) {
      const { pgdata } = this.paths(n.name);
      if (runningPid(pgdata) === null) continue;
      const pid = this.planStop(n.name);
      await stop(this.bins, pgdata, 'fast');
      this.stoppedNow(n.name, pid);
      stopped.push(n.name);
      this.reporter.step(`stopped ${n.name}`);
    }
    return stopped;
  }

  /** Stops everything and removes the data directory (which must be a pgscale cluster's). */
  async destroy(): Promise<void> {
    if (!existsSync(this.dataDir)) return;
    // Only the cluster CA made before the cluster (`init --tls`) is ours without cluster.json.
    const caOnly = readdirSync(this.dataDir).every((n) => n === 'ca' || n === 'tls');
    if (!this.identity() && !isEmptyOrMissing(this.dataDir) && !caOnly) {
      throw new ClusterError(
        ErrorCodes.DATADIR_FOREIGN,
        `${this.dataDir} is not a pgscale cluster's data directory (no cluster.json); not removing it`,
      );
    }
    await this.down();
    rmSync(this.dataDir, { recursive: true, force: true });
    this.reporter.step(`removed ${this.dataDir}`);
  }

  // ---------------------------------------------------------------- replicas

  /** Provisions and starts a node already present in the config as a standby of its group. */
  async addReplica(n: NodeRef, opts: { waitStreamingMs?: number } = {}): Promise<void> {
    const primary = this.primaryOf(n.group);
    if (!primary || runningPid(this.paths(primary.name).pgdata) === null) {
      throw new ClusterError(
        ErrorCodes.NO_PRIMARY,
        `group ${n.group} has no running primary; run \`pgscale up\` first`,
      );
    }
    if (await portInUse(n.port, n.host)) {
      throw new ClusterError(
        ErrorCodes.PORT_IN_USE,
        `port ${n.port} for the new node ${n.name} is already in use`,
      );
    }
    await this.cloneNode(n, primary);
    await this.startNode(n, []);
    await this.waitStreaming(opts.waitStreamingMs ?? 120_000);
    await this.refreshConf(n.group);
  }

  /** Stops a standby, drops its slot and removes its data directory. */
  async removeReplica(n: NodeRef): Promise<void> {
    const primary = this.primaryOf(n.group);
    if (primary?.name === n.name) {
      throw new ClusterError(
        ErrorCodes.USAGE,
        `${n.name} is the primary of group ${n.group}; switch over to another node before removing it`,
      );
    }
    const { pgdata, log } = this.paths(n.name);
    const pid = this.planStop(n.name);
    await stop(this.bins, pgdata, 'fast');
    this.stoppedNow(n.name, pid);
    this.reporter.step(`stopped ${n.name}`);
    if (primary && runningPid(this.paths(primary.name).pgdata) !== null) {
      await dropSlotIfIdle(this.target(primary), slotName(n.name));
      this.reporter.step(`dropped slot ${slotName(n.name)} on ${primary.name}`);
    }
    rmSync(pgdata, { recursive: true, force: true });
    rmSync(log, { force: true });
  }

  /**
   * Rebuilds a standby from its group's primary (`pgscale reinit`): stopped, its data directory
   * wiped and cloned afresh, started as a standby. The caller waits for it to stream.
   */
  async reinit(n: NodeRef, primary: NodeRef): Promise<void> {
    const { pgdata } = this.paths(n.name);
    const pid = this.planStop(n.name);
    if (pid !== null) await stop(this.bins, pgdata, 'immediate').catch(() => undefined);
    this.stoppedNow(n.name, pid);
    await clearOrphanedServer(pgdata);
    await this.ensureSlots(primary, [n]);
    await this.cloneNode(n, primary);
    await this.startNode(n, []);
  }

  // ---------------------------------------------------------------- groups

  /** What must hold before a new group is provisioned (preflight.ts); nothing is touched. */
  async preflightGroup(group: number): Promise<void> {
    await preflightNewGroup(this, group);
  }

  /**
   * Provisions the last group of the config while the others run, as `up` does a group at
   * bootstrap: its archive directory, its primary (initdb with the cluster's settings, the roles,
   * passwords and application database), its standbys cloned and streaming.
   */
  async addGroup(group: number, opts: { waitStreamingMs?: number } = {}): Promise<void> {
    await this.preflightGroup(group);
    const secrets = this.secrets();
    ensureOwnedDir(this.archiveDir(group), 0o700);
    await this.upGroup(group, secrets);
    await this.ensureStanza(group);
    await this.waitStreaming(opts.waitStreamingMs ?? 120_000);
    await this.refreshConf(group);
  }

  /**
   * Stops every node of a group (primary first), deletes their data directories and logs and the
   * group's archive. Nothing else: the group must have been let go of (config, controller) first.
   */
  async removeGroup(group: number): Promise<string[]> {
    const stopped = await this.stopGroup(group);
    for (const n of this.nodes().filter((x) => x.group === group)) {
      const { pgdata, log } = this.paths(n.name);
      rmSync(pgdata, { recursive: true, force: true });
      rmSync(log, { force: true });
    }
    rmSync(this.archiveDir(group), { recursive: true, force: true });
    return stopped;
  }

  // ---------------------------------------------------------------- roles (used by HA)

  /** Where a standby's primary_conninfo points (postgresql.auto.conf), or null. */
  upstreamOf(n: NodeRef): { host: string; port: number } | null {
    const auto = join(this.paths(n.name).pgdata, 'postgresql.auto.conf');
    let text: string;
    try {
      text = readFileSync(auto, 'utf8');
    } catch {
      return null;
    }
    const line = text.split('\n').find((l) => /^\s*primary_conninfo\s*=/.test(l));
    if (!line) return null;
    const host = /\bhost=([^\s']+)/.exec(line)?.[1];
    const port = /\bport=(\d+)/.exec(line)?.[1];
    return host && port ? { host, port: Number(port) } : null;
  }

  /** Promotes a standby with pg_promote() and waits until it accepts writes (standby.signal goes). */
  async promote(n: NodeRef, timeoutS = 60): Promise<void> {
    await withClient(
      this.target(n),
      async (c) => {
        // pg_promote(wait => true) checks once every 100 ms; polling ourselves every 5 ms takes
        // that much off the time without writes.
        await c.query('SELECT pg_promote(false)');
        const deadline = Date.now() + timeoutS * 1000;
        while (Date.now() < deadline) {
          const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
          if (!r.rows[0]?.rec) return;
          await new Promise((res) => setTimeout(res, 5));
        }
        throw new ClusterError(ErrorCodes.TIMEOUT, `${n.name} did not finish promotion within ${timeoutS} s`);
      },
      5000,
    );
  }

  /**
   * Fences a local node: SIGKILL to its postmaster and to every process the postmaster forked
   * (collected first: once the postmaster is gone they are re-parented), which works on a frozen
   * (SIGSTOP) server too, then writes standby.signal so that nothing restarts it as a primary.
   * Returns how many processes were killed.
   */
  fence(n: NodeRef): number {
    const { pgdata } = this.paths(n.name);
    let killed = 0;
    const pid = postmasterPidOf(pgdata);
    if (pid !== null && pidAlive(pid)) {
      this.planned.set(n.name, pid);
      killed = killServerTree(pid);
      // Usually still dying: then the supervisor's next pass sees it go.
      this.stoppedNow(n.name, pid);
    }
    if (isProvisioned(pgdata)) writeFenceMarkers(pgdata);
    return killed;
  }

  /**
   * Whether this Cluster stopped (or fenced) the postmaster `pid` of node `name` itself: a
   * switchover, a fence, a rejoin, `down`. The supervisor does not count those as exits.
   */
  stoppedOnPurpose(name: string, pid: number): boolean {
    return this.planned.get(name) === pid;
  }

  private planStop(name: string): number | null {
    const pid = runningPid(this.paths(name).pgdata);
    if (pid !== null) this.planned.set(name, pid);
    return pid;
  }

  /**
   * Calls `fn(node, pid)` each time a stop this Cluster asked for (switchover, rejoin, down,
   * remove-replica; a fence whose kill has already taken effect) has ended postmaster `pid`, at
   * that moment: the supervisor records the stop then, instead of at its next pass, which may
   * come after the node already runs again (a switchover restarts the old primary within a
   * second). Returns the function that unsubscribes.
   */
  onPlannedStop(fn: (name: string, pid: number) => void): () => void {
    this.stopListeners.add(fn);
    return () => this.stopListeners.delete(fn);
  }

  private stoppedNow(name: string, pid: number | null): void {
    if (pid === null || pidAlive(pid)) return;
    for (const fn of this.stopListeners) {
      try {
        fn(name, pid);
      } catch {
        // a listener's trouble is not the stop's
      }
    }
  }

  /** Fenced as a former primary and not yet rejoined (its WAL may hold what the new primary lacks). */
  needsRejoin(n: NodeRef): boolean {
    return existsSync(join(this.paths(n.name).pgdata, REJOIN_MARKER));
  }

  /** Stops a node (fast shutdown by default: its standbys receive the shutdown checkpoint). */
  async stopNode(n: NodeRef, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const { pgdata } = this.paths(n.name);
    const pid = runningPid(pgdata);
    if (pid === null) return;
    this.planned.set(n.name, pid);
    // Signal the postmaster ourselves and watch it every 5 ms (pg_ctl checks every 100 ms):
    // in a switchover this wait is part of the time without writes.
    try {
      process.kill(pid, mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
    } catch {
      await stop(this.bins, pgdata, mode);
      return this.stoppedNow(n.name, pid);
    }
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && pidAlive(pid)) await new Promise((r) => setTimeout(r, 5));
    if (pidAlive(pid)) await stop(this.bins, pgdata, 'immediate');
    this.stoppedNow(n.name, pid);
  }

  /** Makes sure the primary has a physical slot for each standby (after a promotion it has none). */
  async ensureSlots(primary: NodeRef, standbys: readonly NodeRef[]): Promise<void> {
    if (standbys.length === 0) return;
    await withClient(this.target(primary), async (c) => {
      for (const s of standbys) {
        await c.query(
          `SELECT pg_create_physical_replication_slot($1, true)
            WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
          [slotName(s.name)],
        );
      }
    });
  }

  /**
   * Points a standby at `primary` (primary_conninfo and its slot in postgresql.auto.conf) and
   * reloads it when it runs: PostgreSQL 13+ restarts the WAL receiver, no server restart.
   */
  async repoint(n: NodeRef, primary: NodeRef): Promise<void> {
    const { pgdata } = this.paths(n.name);
    this.writeFollow(n, primary);
    this.writeConf(n, []);
    await reload(this.bins, pgdata);
  }

  /** Starts a stopped node as a standby of `primary`. */
  async startStandby(n: NodeRef, primary: NodeRef): Promise<void> {
    this.writeFollow(n, primary);
    await this.startNode(n, []);
  }

  /** Starts a stopped node as the primary of its group (after a store outage stopped it). */
  async startPrimary(n: NodeRef): Promise<void> {
    await this.startNode(n, this.standbyNames(n.group, n.name));
  }

  /**
   * Brings a stopped former primary back as a standby of `primary`: pg_rewind first (data
   * checksums are on; PostgreSQL 13+ finishes the crash recovery of a killed server itself), and a
   * fresh clone when rewinding is impossible. Returns how it was done. The node is never started
   * as a primary on the way: standby.signal is written before it starts.
   */
  async rejoin(n: NodeRef, primary: NodeRef): Promise<'pg_rewind' | 'clone'> {
    const { pgdata } = this.paths(n.name);
    if (runningPid(pgdata) !== null) {
      const pid = this.planStop(n.name);
      await stop(this.bins, pgdata, 'fast');
      this.stoppedNow(n.name, pid);
    }
    // pg_rewind's single-user crash recovery, like a start, needs the old server's processes gone.
    await clearOrphanedServer(pgdata);
    await this.ensureSlots(primary, [n]);
    if (this.bins.pgRewind && isProvisioned(pgdata)) {
      try {
        await this.rewind(n, primary);
        await this.startNode(n, []);
        rmSync(join(pgdata, REJOIN_MARKER), { force: true });
        return 'pg_rewind';
      } catch (e) {
        this.reporter.step(
          `pg_rewind of ${n.name} did not work, cloning instead: ${(e as Error).message.replace(/\s*\n\s*/g, ' | ')}`,
        );
        await stop(this.bins, pgdata, 'immediate').catch(() => undefined);
      }
    }
    await this.cloneNode(n, primary);
    await this.ensureSlots(primary, [n]);
    await this.startNode(n, []);
    rmSync(join(pgdata, REJOIN_MARKER), { force: true });
    return 'clone';
  }

  private async rewind(n: NodeRef, primary: NodeRef): Promise<void> {
    const { pgdata } = this.paths(n.name);
    await rewindDataDir({
      bins: this.bins,
      pgdata,
      source: this.target(primary),
      ssl: sslParams(this.rootCert(), this.clientPair(n)),
      passfile: this.passfile(),
    });
    // pg_rewind copied the source's files, our marker and settings among them.
    this.mark(n);
    rmSync(join(pgdata, 'postmaster.pid'), { force: true });
    this.writeFollow(n, primary);
  }

  /** Marks a node to rejoin (it failed to start as a standby: its WAL has probably diverged). */
  markForRejoin(n: NodeRef): void {
    const p = join(this.paths(n.name).pgdata, REJOIN_MARKER);
    writeFileSync(p, '', { mode: 0o600 });
    chownToService(p);
  }

  /** Writes the primary's conf (synchronous_standby_names naming its standbys); reload it after. */
  writePrimaryConf(primary: NodeRef): void {
    this.writeConf(primary, this.standbyNames(primary.group, primary.name));
  }

  /** Rewrites the primary's conf (synchronous_standby_names names its standbys) and reloads it. */
  /**
   * Writes a running node's files from the current config again and has it read them (an agent's
   * reload): a standby names no synchronous standbys; a primary names its group's other nodes when
   * `syncNames` (it did before the reload), none otherwise.
   */
  async reloadNodeConf(n: NodeRef, syncNames: boolean): Promise<void> {
    this.writeConf(n, syncNames ? this.standbyNames(n.group, n.name) : []);
    await reload(this.bins, this.paths(n.name).pgdata);
  }

  async refreshPrimaryConf(primary: NodeRef): Promise<void> {
    this.writeConf(primary, this.standbyNames(primary.group, primary.name));
    await withClient(this.target(primary), (c) => c.query('SELECT pg_reload_conf()'));
  }
}
