/** Notebooks in quick mode, shard 1: see notebook-suite.ts. */
import { notebookSuite } from './notebook-suite.js';

notebookSuite(1);
