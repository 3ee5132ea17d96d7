# JupyterHub configuration for a class on one machine: `npx attnlab hub` writes hub.json beside a copy of this file
# and starts `jupyterhub -f <copy>`. Every setting comes from hub.json (see lib/cli/hub.ts, HubSettings); this file only
# turns them into JupyterHub's traits. Written for Debian's jupyterhub 3.0 (notebook 6 single-user servers).
#
# Who can log in: ClassroomAuthenticator, one shared class password (the teacher hands it out), any username that
# matches `username_pattern`; on first login a Unix account is created for the student (LocalAuthenticator's
# create_system_users, which needs the hub to run as root). To use your university's accounts instead, replace
# `c.JupyterHub.authenticator_class` below: PAMAuthenticator (Debian: the machine's own accounts) ships with
# JupyterHub; LDAP, OAuth (GitHub, Google, Azure AD, generic OIDC) and LTI come as the ldapauthenticator, oauthenticator
# and ltiauthenticator packages (pip), each configured with its own traits; keep the spawner.
#
# What each student gets (ClassroomSpawner): a single-user notebook server running as their own Unix user, the attnlab
# notebooks copied into ~/attnlab-notebooks on first login (never overwritten later), the attnlab kernel (installed
# system-wide, so no per-user `npm ci`), ATTNLAB_THREADS=1 (one native thread per kernel, not one per core), a memory
# and CPU cap on their whole process tree (cgroup v2, or v1 where that is what the machine has; where neither can be
# written the hub logs a warning once and runs without caps), idle kernels culled and idle servers stopped.
import json
import os
import pwd
import re
import shutil

from jupyterhub.auth import LocalAuthenticator
from jupyterhub.spawner import LocalProcessSpawner
from tornado import gen
from traitlets import Unicode

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.environ.get("ATTNLAB_HUB_SETTINGS", os.path.join(HERE, "hub.json"))) as f:
    S = json.load(f)


class ClassroomAuthenticator(LocalAuthenticator):
    """One shared password for the class; usernames must match `username_pattern` (lower case)."""

    password = Unicode(config=True, help="The class password.")
    username_pattern = Unicode(r"^[a-z][a-z0-9_-]{0,30}$", config=True)

    def normalize_username(self, username):
        return username.strip().lower()

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        if not self.password or data.get("password", "") != self.password:
            self.log.warning("attnlab hub: wrong password for %r", name)
            return None
        if not re.match(self.username_pattern, name):
            self.log.warning("attnlab hub: refused username %r (it must match %s)", name, self.username_pattern)
            return None
        return name


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _cgroup_caps(name, pid, mem_bytes, cpus, log):
    """Put `pid` (and so everything it starts) in a cgroup `attnlab/<name>` capped at mem_bytes and cpus cores.
    Returns a description of what was applied, or None when no cgroup hierarchy can be written."""
    root = "/sys/fs/cgroup"
    try:
        if os.path.exists(os.path.join(root, "cgroup.controllers")):  # cgroup v2 (Debian 12 with systemd)
            parent = os.path.join(root, "attnlab")
            os.makedirs(parent, exist_ok=True)
            _write(os.path.join(root, "cgroup.subtree_control"), "+memory +cpu")
            _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +cpu")
            g = os.path.join(parent, name)
            os.makedirs(g, exist_ok=True)
            _write(os.path.join(g, "memory.max"), mem_bytes)
            _write(os.path.join(g, "cpu.max"), "%d 100000" % int(cpus * 100000))
            _write(os.path.join(g, "cgroup.procs"), pid)
            return "cgroup v2 %s" % g
        mem, cpu = os.path.join(root, "memory"), os.path.join(root, "cpu")
        if os.path.isdir(mem) and os.path.isdir(cpu):  # cgroup v1
            gm, gc = os.path.join(mem, "attnlab", name), os.path.join(cpu, "attnlab", name)
            os.makedirs(gm, exist_ok=True)
            os.makedirs(gc, exist_ok=True)
            _write(os.path.join(gm, "memory.limit_in_bytes"), mem_bytes)
            _write(os.path.join(gc, "cpu.cfs_period_us"), 100000)
            _write(os.path.join(gc, "cpu.cfs_quota_us"), int(cpus * 100000))
            _write(os.path.join(gm, "cgroup.procs"), pid)
            _write(os.path.join(gc, "cgroup.procs"), pid)
            return "cgroup v1 %s, %s" % (gm, gc)
    except OSError as e:
        log.warning("attnlab hub: cannot cap %s's resources (%s); running without memory/CPU caps", name, e)
    return None


def _cgroup_remove(name):
    """Remove the student's (now empty) cgroups once their server has stopped."""
    for d in ("/sys/fs/cgroup/attnlab/%s", "/sys/fs/cgroup/memory/attnlab/%s", "/sys/fs/cgroup/cpu/attnlab/%s"):
        try:
            os.rmdir(d % name)
        except OSError:
            pass


class ClassroomSpawner(LocalProcessSpawner):
    """LocalProcessSpawner plus the class's notebooks, environment and resource caps."""

    def _copy_notebooks(self):
        pw = pwd.getpwnam(self.user.name)
        dest = os.path.join(pw.pw_dir, "attnlab-notebooks")
        if os.path.exists(dest):
            return
        shutil.copytree(S["notebooks"], dest)
        for d, dirs, files in os.walk(dest):
            for p in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    @gen.coroutine
    def start(self):
        self._copy_notebooks()
        result = yield super().start()
        applied = _cgroup_caps(self.user.name, self.pid, S["memLimitBytes"], S["cpuLimit"], self.log)
        self.log.info("attnlab hub: %s started (pid %s), caps: %s", self.user.name, self.pid, applied or "none")
        return result

    @gen.coroutine
    def stop(self, now=False):
        yield super().stop(now=now)
        _cgroup_remove(self.user.name)


c.JupyterHub.bind_url = "http://%s:%d" % (S["ip"], S["port"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % (S["port"] + 1)
c.JupyterHub.hub_port = S["port"] + 2
# Debian's configurable-http-proxy finds its modules in /usr/share/nodejs only under Debian's own nodejs.
c.ConfigurableHTTPProxy.command = ["env", "NODE_PATH=/usr/share/nodejs", "configurable-http-proxy"]
c.JupyterHub.data_files_path = "/usr/share/jupyterhub"
c.JupyterHub.db_url = "sqlite:///" + os.path.join(S["dir"], "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(S["dir"], "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(S["dir"], "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = os.path.join(S["dir"], "proxy.pid")

c.JupyterHub.authenticator_class = ClassroomAuthenticator
c.ClassroomAuthenticator.password = S["password"]
c.ClassroomAuthenticator.create_system_users = True
c.Authenticator.admin_users = set(S.get("admins", []))

c.JupyterHub.spawner_class = ClassroomSpawner
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.notebook_dir = "~/attnlab-notebooks"
c.Spawner.default_url = "/tree"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.mem_limit = S["memLimitBytes"]
c.Spawner.cpu_limit = S["cpuLimit"]
c.Spawner.environment = {
    "ATTNLAB_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
if S.get("kernelPrefix"):  # the load test's own kernelspec, not the machine's
    c.Spawner.environment["JUPYTER_PATH"] = os.path.join(S["kernelPrefix"], "share", "jupyter")
c.Spawner.args = [
    # Kernels idle this long are shut down (also when a tab still shows them), checked every minute.
    "--MappingKernelManager.cull_idle_timeout=%d" % S["cullKernelSeconds"],
    "--MappingKernelManager.cull_interval=60",
    "--MappingKernelManager.cull_connected=True",
    # A server with no kernel and no activity this long stops itself; the student's next visit starts it again.
    "--NotebookApp.shutdown_no_activity_timeout=%d" % S["stopServerSeconds"],
]

# The load test (scripts/hub/loadtest.py) logs students in through the login form and then acts for them with an
# admin service token; it exists only when hub.json names one.
if S.get("serviceToken"):
    c.JupyterHub.services = [{"name": "attnlab-loadtest", "api_token": S["serviceToken"]}]
    c.JupyterHub.load_roles = [
        {"name": "attnlab-loadtest", "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
         "services": ["attnlab-loadtest"]},
    ]
