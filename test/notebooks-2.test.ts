/** Notebooks in quick mode, shard 2: see notebook-suite.ts. */
import { notebookSuite } from './notebook-suite.js';

notebookSuite(2);
