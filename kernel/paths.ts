/** Where this package lives, from either its source (`kernel/`) or its build (`dist/kernel/`). */
import { packageRoot } from '../lib/util/paths.js';

/** The attnlab package root, found once by lib/util/paths.ts (kernel/ and lib/ compile together, so both ship). */
export const PACKAGE_ROOT = packageRoot();
