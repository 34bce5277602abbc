"""instruments.py -- which instruments a user may see: the default rule (groups named
`chartgate:<glob>`), the CHARTGATE_INSTRUMENTS override, and the gateway's rules for patterns."""

import logging
import re
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger("chartgate_session")

DEFAULT_HOOK = "chartgate_session.instruments.from_groups"
GROUP_PREFIX = "chartgate:"

# What the gateway accepts in a session's "instruments" (proto/PROTOCOL.md §11.1); a session
# breaking these rules would be refused (401) as a whole.
PATTERN_RE = re.compile(r"[A-Za-z0-9._*?\[\]-]{1,64}\Z")
PATTERNS_MAX = 64


def from_groups(user):
    """The default rule. Superusers see every instrument (None: no "instruments" member).
    Anyone else sees the union of the globs their groups name: a group "chartgate:rb*" allows
    rb*, "chartgate:*" allows everything. Without such a group: [] = nothing. A group name
    whose glob breaks the pattern rules is ignored, with a warning."""
    if getattr(user, "is_superuser", False):
        return None
    groups = getattr(user, "groups", None)
    if groups is None:  # a custom user model without groups
        return []
    patterns = []
    for name in groups.filter(name__startswith=GROUP_PREFIX).values_list("name", flat=True):
        if not name.startswith(GROUP_PREFIX):  # LIKE ignores case on SQLite
            continue
        glob = name[len(GROUP_PREFIX):]
        if PATTERN_RE.match(glob):
            patterns.append(glob)
        else:
            log.warning("group %r: %r is not an instrument pattern; ignored", name, glob)
    return sorted(set(patterns))


def hook_path():
    return getattr(settings, "CHARTGATE_INSTRUMENTS", None) or DEFAULT_HOOK


@lru_cache(maxsize=8)
def _hook(path):
    return import_string(path)


def instruments_for(user):
    """The hook's answer for user, checked: None (every instrument) or a list of at most 64
    distinct patterns. Raises ValueError when the hook returns anything else: a session the
    gateway would refuse is not written."""
    path = hook_path()
    patterns = _hook(path)(user)
    if patterns is None:
        return None
    if isinstance(patterns, (str, bytes)) or not all(isinstance(p, str) for p in patterns):
        raise ValueError("%s returned %r, not None or a list of strings" % (path, patterns))
    patterns = list(dict.fromkeys(patterns))
    bad = [p for p in patterns if not PATTERN_RE.match(p)]
    if bad:
        raise ValueError("%s returned patterns the gateway refuses: %r" % (path, bad[:5]))
    if len(patterns) > PATTERNS_MAX:
        raise ValueError("%s returned %d patterns, more than the gateway's %d"
                         % (path, len(patterns), PATTERNS_MAX))
    return patterns
