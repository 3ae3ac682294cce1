/** The shape of one driver conformance scenario (see suite.ts). */
import type { DriverTarget } from './target.js';
import type { ClientTools } from './util.js';

export interface Scenario {
  name: string;
  run(target: DriverTarget): Promise<void>;
}

export type ScenarioFactory = (tools: ClientTools) => Scenario;
