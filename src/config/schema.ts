/**
 * The schema of `pgscale.yaml`: every setting with its default and a description (the
 * descriptions feed the JSON Schema for editors and `pgscale init`'s comments). Keys are
 * snake_case, as in PostgreSQL, Patroni and PgBouncer configs. Objects are strict: an unknown key
 * is an error that names it, so a typo never silently falls back to a default.
 */
import { z } from 'zod';

const NAME = /^[a-z][a-z0-9_]{0,30}$/;
const SIZE = /^\d+\s*(kB|MB|GB|TB)$/;

export const nodeName = z
  .string()
  .regex(NAME, 'must be lowercase letters, digits or _, starting with a letter, at most 31 characters')
  .describe('Node name; also its application_name and (prefixed) its replication slot name.');

const port = z.number().int().min(1).max(65535);

const cidr = z
  .string()
  .regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'must be an address range such as 127.0.0.1/32 or ::1/128');

const size = (what: string) => z.string().regex(SIZE, `must be a size such as 256MB or 4GB (${what})`);

export const synchronousMode = z
  .union([z.string(), z.boolean()])
  .transform((v) => (v === true ? 'on' : v === false ? 'off' : v))
  .refine((v) => /^(off|on|quorum [1-9]\d*)$/.test(v), {
    error: 'accepted values: off, on, "quorum N" (N ≥ 1)',
  })
  .describe('off | on | "quorum N": manages synchronous_standby_names as ANY N (standbys…).');

export const nodeSchema = z
  .object({
    name: nodeName,
    host: z.string().min(1).default('localhost').describe('Host the node runs on and listens on.'),
    port: port.describe('PostgreSQL port of the node.'),
    priority: z.number().int().min(0).default(100).describe('Failover priority (higher wins).'),
    nofailover: z.boolean().default(false).describe('Never promote this node.'),
  })
  .strict();

export const shardSchema = z
  .object({
    nodes: z
      .array(nodeSchema)
      .min(1, 'a shard needs at least one node')
      .describe('The first node is the initial primary; the others are streaming standbys.'),
  })
  .strict();

export const configSchema = z
  .object({
    cluster: z
      .object({
        name: z
          .string()
          .regex(/^[a-z][a-z0-9-]{0,40}$/, 'must be lowercase letters, digits or -, starting with a letter')
          .default('pgscale')
          .describe('Cluster name.'),
        data_dir: z
          .string()
          .min(1)
          .default('./data')
          .describe(
            'Where node data directories, logs, WAL archive and secrets live (relative to this file).',
          ),
      })
      .strict()
      .default({ name: 'pgscale', data_dir: './data' }),
    postgres: z
      .object({
        bin_dir: z
          .string()
          .nullable()
          .default(null)
          .describe(
            'Directory of initdb/pg_ctl/postgres; null = search (PGSCALE_PG_BIN, pg_config, system, embedded).',
          ),
        superuser: nodeName.default('postgres').describe('Name of the cluster superuser.'),
        locale: z.string().default('C').describe('initdb --locale.'),
        client_networks: z
          .array(cidr)
          .default(['127.0.0.1/32', '::1/128'])
          .describe('Networks allowed to connect to the nodes (pg_hba, scram-sha-256).'),
        parameters: z
          .record(
            z.string().regex(/^[a-z_][a-z0-9_.]*$/, 'not a PostgreSQL setting name'),
            z.union([z.string(), z.number(), z.boolean()]),
          )
          .default({})
          .describe('Extra postgresql.conf settings for every node.'),
      })
      .strict()
      .default({
        bin_dir: null,
        superuser: 'postgres',
        locale: 'C',
        client_networks: ['127.0.0.1/32', '::1/128'],
        parameters: {},
      }),
    replication: z
      .object({
        synchronous: synchronousMode.default('off'),
        archive: z
          .boolean()
          .default(true)
          .describe('Archive WAL to <data_dir>/archive/<shard> (safe: no overwrite, fsync, rename).'),
        wal_keep_size: size('wal_keep_size')
          .default('256MB')
          .describe('WAL kept for standbys without a slot (floor).'),
        max_slot_wal_keep_size: size('max_slot_wal_keep_size')
          .default('4GB')
          .describe('Cap on WAL retained by replication slots, so a dead standby cannot fill the disk.'),
        networks: z
          .array(cidr)
          .default(['127.0.0.1/32', '::1/128'])
          .describe('Networks allowed to connect for replication (pg_hba, role replicator, scram-sha-256).'),
      })
      .strict()
      .default({
        synchronous: 'off',
        archive: true,
        wal_keep_size: '256MB',
        max_slot_wal_keep_size: '4GB',
        networks: ['127.0.0.1/32', '::1/128'],
      }),
    app: z
      .object({
        database: nodeName.default('app').describe('Application database created by `up`.'),
        user: nodeName.default('app').describe('Application role created by `up` (password generated).'),
      })
      .strict()
      .default({ database: 'app', user: 'app' }),
    proxy: z
      .object({
        listen: z.string().default('127.0.0.1').describe('Address the proxy listens on.'),
        port: port.default(6432).describe('Proxy port (the one PostgreSQL endpoint).'),
      })
      .strict()
      .default({ listen: '127.0.0.1', port: 6432 }),
    http: z
      .object({
        listen: z
          .string()
          .default('127.0.0.1')
          .describe('Address of the HTTP API (status, health, metrics).'),
        port: port.default(8008).describe('HTTP API port.'),
      })
      .strict()
      .default({ listen: '127.0.0.1', port: 8008 }),
    shards: z
      .array(shardSchema)
      .min(1, 'at least one shard is needed')
      .describe('Shards, each a primary and its standbys.'),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type NodeConfig = z.output<typeof nodeSchema>;
