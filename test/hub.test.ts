/**
 * `attnlab hub`: its settings and argument errors, the JupyterHub config and load-test driver compile, the deploy files
 * (Helm values, Dockerfile) are well formed, and the load test itself: N = 2 students log in through the hub, start a
 * server, run notebook 00 in quick mode with the attnlab kernel and log out, with no failure. The load test needs root
 * (JupyterHub makes a Unix account per student) and Debian's jupyterhub, which `npm test`'s set-up installs on CI; it
 * installs the kernelspec in a folder of its own, so the machine's system-wide attnlab kernel is left as it was.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../lib/cli/args.js';
import { hubSettings, parseBytes, runLoadTest, unreadableForOthers } from '../lib/cli/hub.js';
import { ensureBuilt, ROOT } from './kernel-support.js';

const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

describe('attnlab hub settings', () => {
  it('binds to loopback on port 8000 with a generated password, 2 GiB and one CPU per student', () => {
    const { settings: s, noStart } = hubSettings(['--dir', '/tmp/attnlab-hub-settings-test']);
    expect(s.ip).toBe('127.0.0.1');
    expect(s.port).toBe(8000);
    expect(s.password.length).toBeGreaterThanOrEqual(12);
    expect(s.memLimitBytes).toBe(2 * 2 ** 30);
    expect(s.cpuLimit).toBe(1);
    expect(s.notebooks).toBe(join(ROOT, 'notebooks'));
    expect(noStart).toBe(false);
  });

  it('names the argument, the expected and the actual value on bad input', () => {
    const bad = (argv: string[], msg: string) => {
      expect(() => hubSettings(argv)).toThrow(UsageError);
      expect(() => hubSettings(argv)).toThrow(msg);
    };
    bad(['--port', '80'], '--port must be an integer in [1024, 65533], got "80"');
    bad(['--ip', 'example.org'], '--ip must be an IP address (e.g. 127.0.0.1 or 0.0.0.0), got "example.org"');
    bad(['--cpus', '0'], '--cpus must be a number in (0,');
    bad(['--mem', 'lots'], '--mem must be a size like 512M or 2G, got "lots"');
    bad(['--password', 'abc'], '--password must have at least 6 characters');
    bad(['--portt', '1'], 'unknown option --portt');
    expect(parseBytes('512M')).toBe(512 * 2 ** 20);
    expect(parseBytes('1.5G')).toBe(1.5 * 2 ** 30);
    expect(() => parseBytes('100M')).toThrow('at least 256M');
  });

  it('finds path components other users cannot read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attnlab-hub-perm-'));
    const file = join(dir, 'main.js');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    chmodSync(dir, 0o755);
    expect(unreadableForOthers(file).filter((p) => p.startsWith(dir))).toEqual([]);
    chmodSync(dir, 0o700);
    chmodSync(file, 0o600);
    expect(unreadableForOthers(file)).toEqual(expect.arrayContaining([dir, file]));
    rmSync(dir, { recursive: true });
  });
});

describe('hub files', () => {
  it('the JupyterHub config and the load-test driver compile', () => {
    for (const f of ['jupyterhub_config.py', 'loadtest.py']) {
      const r = spawnSync(
        PY,
        ['-c', `import ast,sys; ast.parse(open(sys.argv[1]).read())`, join(ROOT, 'scripts', 'hub', f)],
        {
          encoding: 'utf8',
        },
      );
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
    }
  });

  it('the Zero to JupyterHub values parse as YAML and name the image, limits, culling and the notebook copy', () => {
    const r = spawnSync(
      PY,
      [
        '-c',
        'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))',
        join(ROOT, 'deploy', 'z2jh-values.yaml'),
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as {
      singleuser: {
        image: { name: string; tag: string };
        cpu: { limit: number };
        memory: { limit: string };
        extraEnv: Record<string, string>;
        lifecycleHooks: { postStart: { exec: { command: string[] } } };
      };
      cull: { enabled: boolean; timeout: number };
    };
    expect(v.singleuser.image.name).toMatch(/attnlab-singleuser$/);
    expect(v.singleuser.cpu.limit).toBeGreaterThan(0);
    expect(v.singleuser.memory.limit).toMatch(/^\d+[MG]$/);
    expect(v.singleuser.extraEnv.ATTNLAB_THREADS).toBe('1');
    expect(v.singleuser.lifecycleHooks.postStart.exec.command.join(' ')).toContain('attnlab-notebooks');
    expect(v.cull.enabled).toBe(true);
  });

  it('the single-user Dockerfile is well formed: known instructions, FROM first, every COPY source in the repository', () => {
    const lines = readFileSync(join(ROOT, 'deploy', 'singleuser.Dockerfile'), 'utf8')
      .replace(/\\\n/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const known = new Set(['FROM', 'RUN', 'COPY', 'ENV', 'WORKDIR', 'USER', 'EXPOSE', 'CMD', 'ARG', 'LABEL']);
    expect(lines[0]).toMatch(/^FROM \S+/);
    for (const l of lines) expect(known.has(l.split(/\s+/)[0]), l).toBe(true);
    for (const l of lines.filter((x) => x.startsWith('COPY '))) {
      const parts = l.split(/\s+/).slice(1, -1);
      for (const p of parts) expect(existsSync(join(ROOT, p)), `COPY source ${p}`).toBe(true);
    }
    const cmd = lines.find((l) => l.startsWith('CMD '))!;
    expect(JSON.parse(cmd.slice(4))).toEqual(['jupyterhub-singleuser']);
  });
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hub = existsSync('/usr/bin/jupyterhub') && existsSync('/usr/bin/configurable-http-proxy');
const why = !isRoot ? 'needs root' : !hub ? 'needs Debian jupyterhub' : '';

describe.skipIf(why !== '')(`hub load test${why ? ` (skipped: ${why})` : ''}`, () => {
  it('two students log in, start a server, run notebook 00 in quick mode and log out, with no failure', async () => {
    ensureBuilt();
    const report = await runLoadTest({
      users: 2,
      notebook: join(ROOT, 'notebooks', '00-attention-basics.ipynb'),
      port: 8150,
      timeout: 900,
    });
    const s = report.summary;
    expect(s.failures, JSON.stringify(report, null, 1).slice(0, 6000)).toBe(0);
    expect(s.users).toBe(2);
    expect(s.first_result_s_max).toBeGreaterThan(0);
    expect(s.notebook_s_max).toBeGreaterThan(s.first_result_s_max);
    expect(s.peak_rss_mb_max).toBeGreaterThan(50);
    for (const st of report.students) expect(spawnSync('id', [String(st.user)]).status, 'account removed').not.toBe(0);
  }, 1_200_000);
});
