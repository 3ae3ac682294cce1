/**
 * PostgreSQL's own regression suite (src/test/regress: sql/, expected/, data/, parallel_schedule)
 * of exactly the server's minor version, and the `regress.so` library its tests load, for
 * `npm run test:regress`. Downloaded once into a gitignored cache (`.cache/pg-regress-<version>/`
 * in the checkout, or PGSCALE_REGRESS_CACHE) and never committed. Where it comes from, in order:
 *   1. Debian's source package, when the server is a Debian build (`postgres --version` says
 *      "(Debian 15.18-0+deb12u1)"): `apt-get source --download-only postgresql-15=<version>`, which
 *      needs deb-src entries in APT's sources and checks the archive's signatures;
 *   2. else the same files from Debian's pool over HTTP (deb.debian.org, then debian-security),
 *      the .orig tarball checked against the SHA-256 listed in the package's .dsc;
 *   3. else the upstream tarball from ftp.postgresql.org, checked against its published .sha256.
 * The tarball's own version (configure's PACKAGE_VERSION) must equal the server's, or nothing is
 * used. `regress.so` is then built from the same tree (a minimal ./configure and one make target,
 * no server headers package needed): the server loads it, so every file in the cache is made
 * readable by the unprivileged service user.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/harness.js';
import { serviceCanReach } from '../src/cluster/run-as.js';

/** The server's version, from `postgres --version`. */
export interface ServerVersion {
  /** Upstream version, e.g. "15.18". */
  upstream: string;
  major: number;
  /** Debian package version, e.g. "15.18-0+deb12u1", when it is a Debian build. */
  debian: string | null;
  /** The whole `postgres --version` line. */
  line: string;
}

export interface RegressSource {
  version: string;
  /** Where the tarball came from (apt source package, pool URL, upstream URL). */
  origin: string;
  /** SHA-256 of the tarball the tree was extracted from. */
  sha256: string;
  /** src/test/regress of the extracted tree: pg_regress's --inputdir. */
  inputDir: string;
  /** The directory holding regress.so: pg_regress's --dlpath. */
  dlPath: string;
  /** pg_regress built from the same tree. */
  pgRegress: string;
}

/** The libraries the parallel schedule's tests load from pg_regress's --dlpath. */
const LIBS = ['regress.so', 'refint.so', 'autoinc.so'];

const log = (s: string) => process.stderr.write(`${s}\n`);

export function serverVersion(postgres: string): ServerVersion {
  const line = execFileSync(postgres, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  const m = /\(PostgreSQL\)\s+(\d+)\.(\d+)/.exec(line);
  if (!m) throw new Error(`cannot read a PostgreSQL version in "${line}"`);
  const deb = /\(Debian\s+([^)\s]+)\)/.exec(line);
  return { upstream: `${m[1]}.${m[2]}`, major: Number(m[1]), debian: deb ? deb[1]! : null, line };
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function curl(url: string, out: string): boolean {
  const r = spawnSync('curl', ['-fsSL', '--retry', '2', '-m', '600', '-o', out, url], { stdio: 'ignore' });
  return r.status === 0;
}

/** `apt-get source --download-only`; the tarball's path, or null when APT cannot (no deb-src). */
function viaApt(v: ServerVersion, dir: string): { tarball: string; origin: string } | null {
  // APT downloads as its sandbox user _apt: the directory must be writable by it.
  chmodSync(dir, 0o777);
  const pkg = `postgresql-${v.major}=${v.debian}`;
  const r = spawnSync('apt-get', ['source', '--download-only', pkg], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) {
    log(
      `regress: apt-get source ${pkg} failed (${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`,
    );
    return null;
  }
  const tar = readdirSync(dir).find((f) => /\.orig\.tar\.(bz2|gz|xz)$/.test(f));
  return tar ? { tarball: join(dir, tar), origin: `apt-get source ${pkg}` } : null;
}

/** The .dsc and .orig tarball from Debian's pool over HTTP, the tarball checked against the .dsc. */
function viaPool(v: ServerVersion, dir: string): { tarball: string; origin: string } | null {
  const src = `postgresql-${v.major}`;
  for (const base of [
    'http://deb.debian.org/debian/pool/main/p',
    'http://deb.debian.org/debian-security/pool/updates/main/p',
  ]) {
    const dscUrl = `${base}/${src}/${src}_${v.debian}.dsc`;
    const dsc = join(dir, `${src}_${v.debian}.dsc`);
    if (!curl(dscUrl, dsc)) continue;
    const text = readFileSync(dsc, 'utf8');
    const sums = text.split(/^Checksums-Sha256:\s*$/m)[1] ?? '';
    const m = /^\s+([0-9a-f]{64})\s+\d+\s+(\S+\.orig\.tar\.(?:bz2|gz|xz))\s*$/m.exec(sums);
    if (!m) throw new Error(`${dscUrl} lists no .orig tarball with a SHA-256`);
    const tarball = join(dir, m[2]!);
    if (!curl(`${base}/${src}/${m[2]}`, tarball)) continue;
    const got = sha256(tarball);
    if (got !== m[1]) throw new Error(`${m[2]}: SHA-256 ${got} does not match ${dscUrl} (${m[1]})`);
    return { tarball, origin: `${base}/${src}/${m[2]} (SHA-256 from ${dscUrl})` };
  }
  return null;
}

function viaUpstream(v: ServerVersion, dir: string): { tarball: string; origin: string } | null {
  const url = `https://ftp.postgresql.org/pub/source/v${v.upstream}/postgresql-${v.upstream}.tar.bz2`;
  const tarball = join(dir, `postgresql-${v.upstream}.tar.bz2`);
  const sumFile = `${tarball}.sha256`;
  if (!curl(url, tarball) || !curl(`${url}.sha256`, sumFile)) return null;
  const want = readFileSync(sumFile, 'utf8').trim().split(/\s+/)[0];
  const got = sha256(tarball);
  if (got !== want) throw new Error(`${url}: SHA-256 ${got} does not match the published ${want}`);
  return { tarball, origin: url };
}

function run(cmd: string, args: string[], cwd: string, what: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${what} failed (${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}):\n${tail}`);
  }
}

/** Makes the tree readable (and its directories searchable) by everyone: the server reads it. */
function openUp(dir: string): void {
  run('chmod', ['-R', 'a+rX', dir], dir, 'chmod');
}

export function cacheRoot(): string {
  return process.env.PGSCALE_REGRESS_CACHE ?? join(repoRoot, '.cache');
}

/**
 * The regression suite of the server's exact version, downloaded, checked, extracted and with
 * regress.so built on first use; afterwards straight from the cache.
 */
export function regressSource(v: ServerVersion): RegressSource {
  const cache = join(cacheRoot(), `pg-regress-${v.upstream}`);
  const stamp = join(cache, 'source.json');
  if (existsSync(stamp)) {
    const s = JSON.parse(readFileSync(stamp, 'utf8')) as RegressSource;
    if (
      s.version === v.upstream &&
      LIBS.every((l) => existsSync(join(s.dlPath, l))) &&
      existsSync(s.pgRegress)
    )
      return s;
  }
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  const dl = mkdtempSync(join(cache, 'download-'));
  log(`regress: downloading PostgreSQL ${v.upstream}'s sources into ${cache} (once)…`);
  const got = (v.debian ? (viaApt(v, dl) ?? viaPool(v, dl)) : null) ?? viaUpstream(v, dl) ?? null;
  if (!got) {
    throw new Error(
      `could not download PostgreSQL ${v.upstream}'s sources: add deb-src entries to APT's sources ` +
        `(Types: deb-src) and run apt-get update, or check access to deb.debian.org / ftp.postgresql.org`,
    );
  }
  const digest = sha256(got.tarball);
  const tmp = mkdtempSync(join(cache, 'extract-'));
  run('tar', ['-xf', got.tarball, '-C', tmp], tmp, 'extracting the sources');
  const top = readdirSync(tmp).find((d) => d.startsWith('postgresql-'));
  if (!top) throw new Error(`${got.tarball} holds no postgresql-* directory`);
  const configure = readFileSync(join(tmp, top, 'configure'), 'utf8');
  const pv = /^PACKAGE_VERSION='([^']+)'/m.exec(configure)?.[1];
  if (pv !== v.upstream) {
    throw new Error(
      `the downloaded sources are PostgreSQL ${pv ?? '(unknown)'}, the server is ${v.upstream}`,
    );
  }
  const tree = join(cache, top);
  renameSync(join(tmp, top), tree);
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dl, { recursive: true, force: true });
  log('regress: building regress.so and pg_regress (configure + make, a minute or two)…');
  // Only what regress.c needs: the headers configure generates. The server's ABI (64-bit,
  // float8 by value, NAMEDATALEN, BLCKSZ) is configure's default, as in every distribution build.
  run(
    './configure',
    ['-q', '--without-readline', '--without-zlib', '--without-icu', '--without-openssl', '--without-llvm'],
    tree,
    'configure',
  );
  run('make', ['-s', '-C', 'src/backend', 'generated-headers'], tree, 'make generated-headers');
  // What `make -C src/test/regress all` builds for installcheck: the test library, contrib/spi's
  // refint and autoinc (the triggers test loads them from --dlpath too) and pg_regress itself.
  run('make', ['-s', '-C', 'src/test/regress', ...LIBS, 'pg_regress'], tree, 'make regress.so pg_regress');
  const inputDir = join(tree, 'src', 'test', 'regress');
  openUp(cache);
  if (!serviceCanReach(inputDir)) {
    throw new Error(
      `${inputDir} is not reachable by PostgreSQL's service user (a parent directory is private): ` +
        'set PGSCALE_REGRESS_CACHE to a directory every user can enter',
    );
  }
  const s: RegressSource = {
    version: v.upstream,
    origin: got.origin,
    sha256: digest,
    inputDir,
    dlPath: inputDir,
    pgRegress: join(inputDir, 'pg_regress'),
  };
  writeFileSync(stamp, `${JSON.stringify(s, null, 2)}\n`);
  return s;
}
