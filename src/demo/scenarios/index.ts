/**
 * The demo's scenarios, in the order they run. A new one (sharding, later) is a Scenario object
 * (src/demo/scenario.ts) added here; the runner, the summary and the report take it from there.
 */
import type { Scenario } from '../scenario.js';
import { connections } from './connections.js';
import { failover } from './failover.js';
import { readScaling } from './reads.js';
import { switchover } from './switchover.js';
import { writeScaling } from './write-scaling.js';
import { crossGroupQuery } from './cross-group-query.js';
import { addGroup } from './add-group.js';

/** The replicated cluster's first, then the sharding cluster's (started when the first is stopped). */
export const SCENARIOS: readonly Scenario[] = [
  readScaling,
  connections,
  failover,
  switchover,
  writeScaling,
  crossGroupQuery,
  addGroup,
];
