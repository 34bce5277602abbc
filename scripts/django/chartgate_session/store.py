"""store.py -- the Redis side: <prefix><session key> written for a logged-in user with the
Django session's expiry, and deleted again. Redis errors are raised, never swallowed: a
logout that could not revoke the gateway session fails instead of pretending."""

import json
import logging
import re
import time
from functools import lru_cache

import redis
from django.conf import settings

from .instruments import instruments_for

log = logging.getLogger("chartgate_session")

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")  # the gateway's rule for the cookie
USER_ID_MAX = 128  # bytes


@lru_cache(maxsize=4)
def _client(url):
    # One connection pool per URL, shared by the threads of the process. The timeouts bound a
    # login or logout when Redis hangs; the URL may set others (?socket_timeout=1).
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def client():
    """The redis-py client for CHARTGATE_REDIS_URL (shared; do not close it)."""
    return _client(settings.CHARTGATE_REDIS_URL)


def redis_key(session_key):
    return getattr(settings, "CHARTGATE_SESSION_PREFIX", "session:") + session_key


def session_object(user, session):
    """The gateway's session object for user in this Django session (PROTOCOL.md §11.1):
    user_id is str(user.pk); exp is the session's expiry in unix seconds."""
    user_id = str(user.pk)
    if not user_id or len(user_id.encode()) > USER_ID_MAX:
        raise ValueError("user pk %r makes no gateway user_id (1..128 bytes)" % user_id)
    doc = {"user_id": user_id}
    patterns = instruments_for(user)
    if patterns is not None:
        doc["instruments"] = patterns
    doc["exp"] = int(session.get_expiry_date().timestamp())
    return doc


def remember(request, user):
    """SET <prefix><request.session.session_key> for user, with a TTL ending at exp, so that Redis
    forgets it when Django's session expires. Raises ValueError when the session has no key the
    gateway accepts or the instruments hook misbehaves, redis.RedisError when Redis fails."""
    key = request.session.session_key
    if key is None or not SESSION_ID_RE.match(key):
        raise ValueError("the session key is not one the gateway accepts ([A-Za-z0-9_-]{1,128})")
    doc = session_object(user, request.session)
    ttl = max(1, doc["exp"] - int(time.time()))
    client().set(redis_key(key), json.dumps(doc, separators=(",", ":")), ex=ttl)
    log.debug("gateway session written for user %s (ttl %d s)", doc["user_id"], ttl)


def forget(session_key):
    """DEL <prefix><session_key>; a key the gateway could never have accepted is ignored.
    Raises redis.RedisError when Redis fails. Session keys are never logged."""
    if session_key and SESSION_ID_RE.match(session_key):
        client().delete(redis_key(session_key))
