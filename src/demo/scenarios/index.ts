/**
 * The demo's scenarios, in the order they run. A new one (sharding, later) is a Scenario object
 * (src/demo/scenario.ts) added here; the runner, the summary and the report take it from there.
 */
import type { Scenario } from '../scenario.js';
import { connections } from './connections.js';
import { failover } from './failover.js';
import { readScaling } from './reads.js';
import { switchover } from './switchover.js';

export const SCENARIOS: readonly Scenario[] = [readScaling, connections, failover, switchover];
