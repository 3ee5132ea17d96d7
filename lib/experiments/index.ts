/** The experiment registry and every registered experiment (importing this module registers them). */
export * from './registry.js';
import './induction/index.js';
import '../models/pointer/index.js';
import '../sparse/experiments/index.js';
import '../models/brain/index.js';
import '../models/oat/index.js';
