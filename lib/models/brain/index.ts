export * from './experiments.js';
