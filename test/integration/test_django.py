#!/usr/bin/python3
"""test_django.py -- scripts/django's chartgate_session in a real Django project: a user logs in
through django.contrib.auth's LoginView over HTTP, the browser's `sessionid` cookie opens a
chartgate WebSocket (101) that may subscribe to what the user's groups allow (`forbidden`
otherwise), and logging out through LogoutView closes that socket with 4001 within the
revocation bound. Also: a cookie Django never issued gets 401, the Redis key's TTL is the
session age, a second login in the same browser revokes the first user's key, a password change
rotates the key (with the middleware), a custom instruments hook, and the system checks.

The project is written by setUpClass into a temporary directory (settings, urls, templates, a
sqlite database, migrated, with users and groups). Each test starts Debian's Django with
`manage.py runserver 127.0.0.1:PORT --noreload` against the test's private redis-server
(harness.GatewayTestCase) and stops it by PID. scripts/django is put on the Python path the
way a site would (PYTHONPATH). Needs /usr/bin/python3 with python3-django.
"""

import http.cookiejar
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

PY = "/usr/bin/python3"
DJANGO_APP_DIR = os.path.join(harness.REPO_ROOT, "scripts", "django")
SESSION_AGE = 3600  # SESSION_COOKIE_AGE of the test site
REVOKE_BOUND = 10.0  # seconds from logout to close 4001 (gateway: --session-check-s 1)
GATEWAY_ARGS = ("--session-check-s", "1", "--session-cache-ms", "0")

# ---------------------------------------------------------------------------------------------
# the Django site

SETTINGS = '''\
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "test-only-%s"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "chartgate_session",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
if os.environ.get("CG_TEST_MIDDLEWARE"):
    MIDDLEWARE.append("chartgate_session.middleware.SessionKeyMiddleware")
ROOT_URLCONF = "cgsite.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [os.path.join(BASE_DIR, "templates")],
    "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth"]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(BASE_DIR, "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast: a test site
USE_TZ = True
SESSION_COOKIE_AGE = %d
LOGIN_REDIRECT_URL = "/home/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING"},
                "chartgate_session": {"handlers": ["console"], "level": "DEBUG"}},
}

# chartgate_session: the one required setting, and the optional hook
CHARTGATE_REDIS_URL = os.environ.get("CHARTGATE_REDIS_URL", "")
if os.environ.get("CG_TEST_HOOK"):
    CHARTGATE_INSTRUMENTS = "cgsite.hooks.instruments"
''' % (secrets.token_hex(16), SESSION_AGE)

FILES = {
    "manage.py": '''\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cgsite.settings")
from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(sys.argv)
''',
    "cgsite/__init__.py": "",
    "cgsite/settings.py": SETTINGS,
    "cgsite/urls.py": '''\
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import include, path


@login_required
def home(request):
    return render(request, "home.html")


urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("home/", home),
]
''',
    "cgsite/hooks.py": '''\
def instruments(user):
    return ["IF*", "IC*"] if user.username == "quant" else []
''',
    "templates/registration/login.html":
        '<form method="post">{% csrf_token %}{{ form.as_p }}<button>Log in</button></form>\n',
    "templates/home.html":
        '<p id="user">{{ user.username }}</p>\n'
        '<form method="post" action="{% url \'logout\' %}">{% csrf_token %}'
        '<button>Log out</button></form>\n',
    "templates/registration/password_change_form.html":
        '<form method="post">{% csrf_token %}{{ form.as_p }}<button>Change</button></form>\n',
    "templates/registration/password_change_done.html": '<p id="done">password changed</p>\n',
}

# name -> (groups, superuser); every password is "pw-<name>"
USERS = {
    "trader": (["chartgate:rb*", "chartgate:au2412", "desk", "chartgate:bad name"], False),
    "boss": ([], True),
    "nobody": ([], False),
    "quant": (["chartgate:rb*"], False),  # the hook, when set, gives IF*/IC* instead
    "changer": (["chartgate:rb*"], False),
    "changer2": (["chartgate:rb*"], False),
}

CREATE_USERS = '''\
import json
from django.contrib.auth.models import Group, User
pks = {}
for name, (groups, superuser) in json.loads(%r).items():
    make = User.objects.create_superuser if superuser else User.objects.create_user
    u = make(name, password="pw-" + name)
    for g in groups:
        u.groups.add(Group.objects.get_or_create(name=g)[0])
    pks[name] = u.pk
print("PKS " + json.dumps(pks))
''' % json.dumps(USERS)


def site_env(redis_url, **extra):
    env = dict(os.environ)
    env.update({"PYTHONPATH": DJANGO_APP_DIR,  # what a site does with scripts/django
                "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the repository
                "DJANGO_SETTINGS_MODULE": "cgsite.settings",
                "CHARTGATE_REDIS_URL": redis_url})
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def manage(project, args, env, timeout=60):
    """Run manage.py ARGS in project; returns (exit status, stdout+stderr)."""
    p = subprocess.run([PY, "manage.py"] + list(args), cwd=project, env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=harness.scaled(timeout))
    return p.returncode, p.stdout.decode("utf-8", "replace")


class DjangoServer:
    """`manage.py runserver 127.0.0.1:PORT --noreload`, its output in logdir; stopped by PID."""

    def __init__(self, project, env, logdir):
        self.project = project
        self.env = env
        self.port = harness.free_port()
        self.log = os.path.join(logdir, "django-%d.log" % self.port)
        self.proc = None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = harness.track(subprocess.Popen(
                [PY, "manage.py", "runserver", "127.0.0.1:%d" % self.port, "--noreload"],
                cwd=self.project, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=out))

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("runserver exited with %s:\n%s"
                                     % (self.proc.returncode, harness.tail(self.log)))
            return harness.http_get(self.port, "/accounts/login/", timeout=1)[0] == 200
        wait_for(ready, harness.scaled(20), "Django's runserver to answer /accounts/login/")
        return self

    def stop(self):
        if self.proc is not None:
            harness.stop_proc(self.proc)


class Browser:
    """An HTTP client that keeps cookies and follows redirects, like a browser on the site."""

    CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar))

    def open(self, path, fields=None):
        """GET (or POST fields, form-encoded) and follow redirects: (status, final path, body)."""
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        try:
            with self.opener.open(self.base + path, data, timeout=harness.scaled(10)) as resp:
                status, url, body = resp.status, resp.geturl(), resp.read()
        except urllib.error.HTTPError as e:
            status, url, body = e.code, e.geturl(), e.read()
        return status, urllib.parse.urlsplit(url).path, body.decode("utf-8", "replace")

    def form_token(self, path):
        status, _, body = self.open(path)
        m = self.CSRF_RE.search(body)
        if status != 200 or not m:
            raise AssertionError("GET %s: %d, no CSRF token in %r" % (path, status, body[:300]))
        return m.group(1)

    def submit(self, path, fields):
        """GET the form at path for its CSRF token, POST fields to it, follow the redirect."""
        return self.open(path, dict(fields, csrfmiddlewaretoken=self.form_token(path)))

    def login(self, username, password=None):
        status, where, body = self.submit("/accounts/login/", {
            "username": username, "password": password or "pw-" + username})
        if (status, where) != (200, "/home/") or '<p id="user">%s</p>' % username not in body:
            raise AssertionError("login as %s ended at %d %s: %r" % (username, status, where,
                                                                     body[:300]))

    def logout(self):
        token = self.form_token("/home/")  # the page's logout button
        status, where, body = self.open("/accounts/logout/", {"csrfmiddlewaretoken": token})
        if (status, where) != (200, "/accounts/login/"):
            raise AssertionError("logout ended at %d %s: %r" % (status, where, body[:300]))

    def cookie(self, name):
        for c in self.jar:
            if c.name == name:
                return c.value
        return None

    def cookie_header(self):
        """The Cookie header a browser would send to the gateway on the same host."""
        return "; ".join("%s=%s" % (c.name, c.value) for c in self.jar)


# ---------------------------------------------------------------------------------------------
# the tests


class DjangoTest(harness.GatewayTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.project = tempfile.mkdtemp(prefix="cg-django-")
        try:
            for name, text in FILES.items():
                path = os.path.join(cls.project, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
            # nothing connects to Redis before a login; the checks only want a URL
            env = site_env("redis://127.0.0.1:1/0")
            rc, out = manage(cls.project, ["migrate", "--noinput"], env)
            if rc != 0:
                raise AssertionError("manage.py migrate failed (%d):\n%s" % (rc, out[-3000:]))
            rc, out = manage(cls.project, ["shell", "-c", CREATE_USERS], env)
            line = [x for x in out.splitlines() if x.startswith("PKS ")]
            if rc != 0 or not line:
                raise AssertionError("creating users failed (%d):\n%s" % (rc, out[-3000:]))
            cls.pks = json.loads(line[-1][4:])
        except BaseException:
            shutil.rmtree(cls.project, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.project, ignore_errors=True)
        super().tearDownClass()

    # -- helpers
    def start_site(self, middleware=False, hook=False):
        """runserver against this test's redis; returns a Browser on it."""
        env = site_env(self.redis.url, CG_TEST_MIDDLEWARE="1" if middleware else None,
                       CG_TEST_HOOK="1" if hook else None)
        site = DjangoServer(self.project, env, self.logdir)
        self.addCleanup(self._finish_site, site)
        site.start()
        self.site = site
        return Browser(site.port)

    def _finish_site(self, site):
        site.stop()
        if self._failed():
            sys.stderr.write("\n--- Django log tail (%s) ---\n%s\n---\n"
                             % (self.id(), harness.tail(site.log, 40)))

    def gateway_session(self, sid):
        """The session object Django wrote for sid, and the key's TTL (seconds)."""
        raw = self.r.get(self.session_prefix + sid)
        self.assertIsNotNone(raw, "no Redis key %s<sid> after login" % self.session_prefix)
        return json.loads(raw), self.r.ttl(self.session_prefix + sid)

    def assert_session(self, sid, user, instruments):
        """The key holds user's id, those instruments (None: no member) and exp/TTL matching
        the Django session age; returns the document."""
        before = int(time.time())
        doc, ttl = self.gateway_session(sid)
        self.assertEqual(doc["user_id"], str(self.pks[user]))
        if instruments is None:
            self.assertNotIn("instruments", doc)
        else:
            self.assertEqual(sorted(doc["instruments"]), sorted(instruments))
        harness.VALIDATOR.validate_session(doc)  # proto/schemas/session.schema.json
        self.assertIsInstance(doc["exp"], int)
        self.assertTrue(before - 60 + SESSION_AGE <= doc["exp"] <= before + SESSION_AGE + 1,
                        "exp %d is not about now + %d" % (doc["exp"], SESSION_AGE))
        self.assertTrue(SESSION_AGE - 60 <= ttl <= SESSION_AGE,
                        "TTL %d is not about the session age %d" % (ttl, SESSION_AGE))
        self.assertTrue(abs((before + ttl) - doc["exp"]) <= 60, "TTL and exp disagree")
        return doc

    def subscribe_forbidden(self, client, name):
        reply = client.request({"action": "subscribe", "instruments": [name],
                                "id": client.next_id()})
        self.assertEqual((reply.get("type"), reply.get("code")), ("error", "forbidden"), reply)

    def assert_revoked(self, client, sid, started):
        """client gets close 4001 within the bound counted from started; sid's key is gone and
        a new handshake with it gets 401."""
        self.assertEqual(self.r.exists(self.session_prefix + sid), 0, "key still in Redis")
        code, reason = client.expect_close(timeout=REVOKE_BOUND + 2)
        took = time.monotonic() - started
        self.assertEqual(code, 4001, "close %s %r" % (code, reason))
        self.assertLessEqual(took, REVOKE_BOUND, "closed %.1fs after the logout" % took)
        self.assertEqual(self.upgrade_status(sid=sid), 401)

    # -- tests
    def test_login_subscribe_logout(self):
        b = self.start_site()
        self.start_gateway(*GATEWAY_ARGS)
        b.login("trader")
        sid = b.cookie("sessionid")
        self.assertRegex(sid or "", r"\A[A-Za-z0-9_-]{1,128}\Z")
        # groups "chartgate:<glob>" only; "desk" is no chartgate group, "bad name" no glob
        self.assert_session(sid, "trader", ["au2412", "rb*"])
        self.assertIn("'bad name' is not an instrument pattern", harness.tail(self.site.log))

        self.assertEqual(self.upgrade_status(cookie=b.cookie_header()), 101)
        c = self.connect(cookie=b.cookie_header(), name="trader")
        c.subscribe(["rb2501"])
        c.subscribe(["au2412"])
        self.subscribe_forbidden(c, "cu2501")
        self.subscribe_forbidden(c, "au2501")

        started = time.monotonic()
        b.logout()
        self.assertIsNone(b.cookie("sessionid"))
        self.assert_revoked(c, sid, started)

    def test_cookie_never_logged_in(self):
        b = self.start_site()
        self.start_gateway(*GATEWAY_ARGS)
        self.assertEqual(self.upgrade_status(sid=secrets.token_urlsafe(24)), 401)
        # a key shaped like Django's (32 of [a-z0-9]) that Django never issued
        fake = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
        self.assertEqual(self.upgrade_status(sid=fake), 401)
        # a visitor of the login page has a CSRF cookie and no session at all
        b.form_token("/accounts/login/")
        self.assertIsNone(b.cookie("sessionid"))
        self.assertEqual(self.upgrade_status(cookie=b.cookie_header()), 401)
        # a failed login writes nothing
        status, where, _ = b.submit("/accounts/login/", {"username": "trader",
                                                         "password": "wrong"})
        self.assertEqual((status, where), (200, "/accounts/login/"))
        self.assertEqual(self.r.keys(self.session_prefix + "*"), [])

    def test_superuser_and_user_without_groups(self):
        boss = self.start_site()
        self.start_gateway(*GATEWAY_ARGS)
        boss.login("boss")
        self.assert_session(boss.cookie("sessionid"), "boss", None)  # every instrument
        c = self.connect(cookie=boss.cookie_header(), name="boss")
        c.subscribe(["cu2501", "rb2501", "IF2412"])

        nobody = Browser(self.site.port)
        nobody.login("nobody")
        self.assert_session(nobody.cookie("sessionid"), "nobody", [])
        n = self.connect(cookie=nobody.cookie_header(), name="nobody")
        self.subscribe_forbidden(n, "rb2501")

    def test_second_login_in_same_browser_revokes_the_first(self):
        b = self.start_site()
        self.start_gateway(*GATEWAY_ARGS)
        b.login("trader")
        sid1 = b.cookie("sessionid")
        c = self.connect(cookie=b.cookie_header(), name="trader")
        c.subscribe(["rb2501"])
        started = time.monotonic()
        b.login("boss")  # login() flushes trader's session: a new key
        sid2 = b.cookie("sessionid")
        self.assertNotEqual(sid1, sid2)
        self.assert_session(sid2, "boss", None)
        self.assert_revoked(c, sid1, started)
        c2 = self.connect(cookie=b.cookie_header(), name="boss")
        c2.subscribe(["cu2501"])

    def test_password_change_rotates_the_key_with_middleware(self):
        b = self.start_site(middleware=True)
        self.start_gateway(*GATEWAY_ARGS)
        b.login("changer")
        sid1 = b.cookie("sessionid")
        self.assert_session(sid1, "changer", ["rb*"])
        c = self.connect(cookie=b.cookie_header(), name="changer")
        c.subscribe(["rb2501"])
        started = time.monotonic()
        new_pw = "pw-changer-" + secrets.token_hex(4)
        status, where, body = b.submit("/accounts/password_change/", {
            "old_password": "pw-changer", "new_password1": new_pw, "new_password2": new_pw})
        self.assertEqual((status, where), (200, "/accounts/password_change/done/"), body[:300])
        sid2 = b.cookie("sessionid")
        self.assertNotEqual(sid1, sid2, "update_session_auth_hash gave no new key")
        self.assert_session(sid2, "changer", ["rb*"])  # still logged in: the new key works
        self.assert_revoked(c, sid1, started)
        c2 = self.connect(cookie=b.cookie_header(), name="changer")
        c2.subscribe(["rb2501"])
        started = time.monotonic()
        b.logout()  # with the middleware too
        self.assert_revoked(c2, sid2, started)

    def test_password_change_without_middleware(self):
        # what the README says the middleware is for: without it the rotated-away key stays in
        # Redis and the new one is not written
        b = self.start_site()
        self.start_gateway(*GATEWAY_ARGS)
        b.login("changer2")
        sid1 = b.cookie("sessionid")
        new_pw = "pw-changer2-" + secrets.token_hex(4)
        status, where, body = b.submit("/accounts/password_change/", {
            "old_password": "pw-changer2", "new_password1": new_pw, "new_password2": new_pw})
        self.assertEqual((status, where), (200, "/accounts/password_change/done/"), body[:300])
        sid2 = b.cookie("sessionid")
        self.assertNotEqual(sid1, sid2)
        self.assertEqual(self.r.exists(self.session_prefix + sid1), 1)
        self.assertEqual(self.r.exists(self.session_prefix + sid2), 0)
        self.assertEqual(self.upgrade_status(sid=sid2), 401)

    def test_instruments_hook(self):
        b = self.start_site(hook=True)
        self.start_gateway(*GATEWAY_ARGS)
        b.login("quant")  # groups say rb*; the hook says IF*, IC*
        self.assert_session(b.cookie("sessionid"), "quant", ["IF*", "IC*"])
        c = self.connect(cookie=b.cookie_header(), name="quant")
        c.subscribe(["IF2412", "IC2412"])
        self.subscribe_forbidden(c, "rb2501")

    def test_system_checks(self):
        env = site_env("")
        rc, out = manage(self.project, ["check"], env)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("chartgate_session.E001", out)
        env = site_env(self.redis.url)
        rc, out = manage(self.project, ["check"], env)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    harness.main()
