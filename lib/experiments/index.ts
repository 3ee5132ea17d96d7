/** The experiment registry and every registered experiment (importing this module registers them). */
export * from './registry.js';
import './induction/index.js';
export * as pointer from '../models/pointer/index.js';
import '../sparse/experiments/index.js';
