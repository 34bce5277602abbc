#!/usr/bin/python3
"""validate.py -- check chartgate wire frames against proto/schemas (offline).

Library (run with Debian's /usr/bin/python3 and python3-jsonschema):

    import sys; sys.path.insert(0, "/path/to/repo/proto")
    import validate
    v = validate.load_validator()            # schemas from this file's schemas/ dir
    v.validate_server_frame({"type": "pong"})        # raises on invalid
    v.validate_client_frame({"action": "ping"})
    frames = v.parse_server_message(ws_text)  # split a batched WebSocket message,
                                              # parse and validate every frame

All $refs resolve from the local schema directory; nothing touches the network.
Schema failures raise jsonschema.exceptions.ValidationError; a malformed batched
message (empty line, trailing newline, bad JSON) raises ValueError.

CLI:
    proto/validate.py --self-test         every file in proto/examples must pass,
                                          every file in proto/examples/invalid must fail,
                                          and every example in PROTOCOL.md must behave as
                                          labelled (below)
    proto/validate.py --doc FILE.md...    only the examples of markdown files
    proto/validate.py KIND FILE...        validate files; KIND is a schema name
                                          (server, client, tick, session, envelope, ...)
Exit status is 0 only when every check went as expected.

Examples in PROTOCOL.md (the rule is written down in its section 12):
  - a fenced block tagged json: every non-blank line is one example (a whole block
    that only parses as one value is one example). A client frame if it has an
    "action", a server frame if it has a "type"; anything else needs a marker;
  - a line starting with "→": every inline code span in it that starts with "{" is a
    server frame;
  - an untagged fenced block: every Redis command in it whose argument is single-quoted
    JSON, with the default names: SET session:<id> (a session), PUBLISH md:<instrument>
    (tick data: checked as the tick frame it becomes), PUBLISH user:<id> / broadcast (any
    JSON value), RPUSH chartgate:inbox (an envelope), FCALL chartgate_overlay 1
    overlays:{<instrument>} <instrument> (an overlay operation). A line of an untagged block that
    starts with "{" or "[" is an error unless the block is marked;
  - a marker, an HTML comment on the line right before the block or "→" line, says what
    to expect instead: <!-- example: KIND --> checks every example as KIND (a schema name,
    client, server, or batch = the whole block is one raw batched message);
    <!-- example: invalid --> or <!-- example: invalid KIND --> means every example of it
    must be REJECTED. Blocks tagged with another language (js, python, sh) are not checked.
"""

import json
import os
import re
import sys

try:
    import jsonschema
    from jsonschema import Draft7Validator, RefResolver
    from jsonschema.exceptions import ValidationError
except ImportError:  # pragma: no cover - environment problem, not a test failure
    sys.stderr.write("validate.py: python3-jsonschema is missing "
                     "(apt-get install -y python3-jsonschema)\n")
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_DIR = os.path.join(HERE, "schemas")
EXAMPLE_DIR = os.path.join(HERE, "examples")
PROTOCOL_MD = os.path.join(HERE, "PROTOCOL.md")
SUFFIX = ".schema.json"

__all__ = ["load_validator", "Validator", "ValidationError", "split_message",
           "doc_examples", "SCHEMA_DIR", "EXAMPLE_DIR", "PROTOCOL_MD"]


def split_message(text):
    """Split one gateway->client WebSocket text message into parsed frames.

    The message is one or more compact JSON objects joined by "\\n" with no
    trailing newline. Raises ValueError on an empty line, a trailing newline or
    a line that is not JSON. Does not check the frames against the schemas.
    """
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    frames = []
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            raise ValueError("line %d of message is empty (trailing or doubled newline?)" % n)
        try:
            frames.append(json.loads(line))
        except ValueError as e:
            raise ValueError("line %d of message is not JSON: %s" % (n, e))
    return frames


class Validator:
    """Holds every schema of a schema directory and validates against them."""

    def __init__(self, schema_dir=SCHEMA_DIR):
        self.schema_dir = schema_dir
        self.schemas = {}  # short name ("tick") -> schema dict
        store = {}
        for fn in sorted(os.listdir(schema_dir)):
            if not fn.endswith(SUFFIX):
                continue
            with open(os.path.join(schema_dir, fn), encoding="utf-8") as f:
                schema = json.load(f)
            Draft7Validator.check_schema(schema)
            self.schemas[fn[: -len(SUFFIX)]] = schema
            store[schema["$id"]] = schema
        self._store = store
        self._validators = {}
        # Frame name -> schema name, read from the umbrellas' oneOf lists, so
        # that adding a frame needs no change here.
        self.server_frames = self._dispatch("server", "type")
        self.client_frames = self._dispatch("client", "action")

    def _dispatch(self, umbrella, key):
        table = {}
        for branch in self.schemas[umbrella]["oneOf"]:
            name = branch["$ref"][: -len(SUFFIX)]
            table[self.schemas[name]["properties"][key]["const"]] = name
        return table

    def validator(self, name):
        """Return the jsonschema validator for schema NAME (e.g. "tick")."""
        v = self._validators.get(name)
        if v is None:
            schema = self.schemas[name]
            resolver = RefResolver(schema["$id"], schema, store=self._store)
            v = Draft7Validator(schema, resolver=resolver)
            self._validators[name] = v
        return v

    def validate(self, obj, name):
        """Validate OBJ against schema NAME; raise ValidationError if invalid."""
        if name not in self.schemas:
            raise KeyError("no schema named %r in %s" % (name, self.schema_dir))
        self.validator(name).validate(obj)

    def _validate_umbrella(self, obj, umbrella, key, table):
        # Check the frame's own schema first when the discriminator is known:
        # its error message is far more useful than the oneOf summary.
        if isinstance(obj, dict) and obj.get(key) in table:
            self.validate(obj, table[obj[key]])
        self.validate(obj, umbrella)

    def validate_server_frame(self, obj):
        """Raise ValidationError unless OBJ is a valid gateway->client frame."""
        self._validate_umbrella(obj, "server", "type", self.server_frames)

    def validate_client_frame(self, obj):
        """Raise ValidationError unless OBJ is a valid client->gateway frame."""
        self._validate_umbrella(obj, "client", "action", self.client_frames)

    def validate_session(self, obj):
        """Raise ValidationError unless OBJ is a valid Redis session object."""
        self.validate(obj, "session")

    def validate_envelope(self, obj):
        """Raise ValidationError unless OBJ is a valid inbox envelope."""
        self.validate(obj, "envelope")

    def parse_server_message(self, text):
        """Split a WebSocket text message (str or bytes) into frames, validate
        each as a server frame, and return the list of parsed frames.
        Raises ValueError (framing/JSON) or ValidationError (schema)."""
        frames = split_message(text)
        for frame in frames:
            self.validate_server_frame(frame)
        return frames

    def kind_of(self, name):
        """Map an example file stem ("tick", "error-bad_json", "server-x") to a
        schema name: the longest schema name that is the whole stem or is
        followed by "-" in it ("history-request-before" -> history-request,
        "history-empty" -> history); otherwise the text before the first "-"."""
        base = name.split("-", 1)[0]
        for cand in sorted(self.schemas, key=len, reverse=True):
            if name == cand or name.startswith(cand + "-"):
                base = cand
                break
        if base in self.server_frames.values() or base == "server":
            return "server", base
        if base in self.client_frames.values() or base == "client":
            return "client", base
        if base == "batch":
            return "batch", base
        if base in self.schemas:
            return base, base
        raise KeyError("cannot tell which schema %r belongs to" % name)

    def check_file(self, path):
        """Validate one example file by its name; raise on failure."""
        stem = os.path.basename(path).rsplit(".", 1)[0]
        with open(path, "rb") as f:
            raw = f.read()
        self.check_raw(raw, *self.kind_of(stem))

    def check_raw(self, raw, kind, schema):
        """Validate RAW (str or bytes) as KIND/SCHEMA, a pair from kind_of(); raise on
        failure. A batch is a raw WebSocket message, whose exact bytes matter."""
        if kind == "batch":
            self.parse_server_message(raw)
        else:
            self.check_obj(json.loads(raw), kind, schema)

    def check_obj(self, obj, kind, schema):
        """Validate the parsed OBJ as KIND/SCHEMA, a pair from kind_of(); raise on failure."""
        if schema not in (kind, "server", "client"):
            self.validate(obj, schema)  # the named frame's schema, e.g. tick
        if kind == "server":
            self.validate_server_frame(obj)
        elif kind == "client":
            self.validate_client_frame(obj)
        else:
            self.validate(obj, kind)


def load_validator(schema_dir=SCHEMA_DIR):
    """Load every *.schema.json in SCHEMA_DIR and return a Validator."""
    return Validator(schema_dir)


# ---- examples inside markdown (PROTOCOL.md section 12) ---------------------------------

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^\s`]*)")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(.*?)\s*-->\s*$")
_ANY_MARKER = re.compile(r"^\s*<!--\s*example\b")
_REDIS = re.compile(r"^\s*(SET|PUBLISH|RPUSH)\s+(\S+)\s+'([^']*)'")
_FCALL = re.compile(r"^\s*FCALL\s+chartgate_overlay\s+1\s+overlays:\{(\S+)\}\s+(\S+)\s+'([^']*)'")
_CODE = re.compile(r"`([^`]+)`")


class DocExample:
    """One example found in a markdown file. check() raises when it is not valid;
    expect_ok says whether it should be. problem, when set, is a mistake in the
    document itself (a bad marker, unlabelled JSON) and always counts as a failure."""

    def __init__(self, line, label, expect_ok=True, check=None, problem=None):
        self.line, self.label, self.expect_ok = line, label, expect_ok
        self.check, self.problem = check, problem


def _auto_kind(raw):
    """(kind, schema) of one JSON text by its discriminator: client frames have an
    "action", server frames a "type". Raises ValueError when it is not JSON and
    KeyError when it is neither."""
    obj = json.loads(raw)
    if isinstance(obj, dict) and "action" in obj:
        return "client", "client"
    if isinstance(obj, dict) and "type" in obj:
        return "server", "server"
    raise KeyError("neither a client frame (\"action\") nor a server frame (\"type\"): "
                   "add a marker <!-- example: KIND -->")


def _redis_example(v, key, payload):
    """The check of a Redis command's single-quoted JSON argument, or None when the key
    is not one of the protocol's (default) names."""
    def as_frame(wrap, kind, schema):
        return lambda: v.check_obj(wrap(json.loads(payload)), kind, schema)
    if key.startswith("session:"):
        return "session", as_frame(lambda o: o, "session", "session")
    if key == "chartgate:inbox":
        return "envelope", as_frame(lambda o: o, "envelope", "envelope")
    if key.startswith("md:"):
        ins = key[3:]
        return "tick data", as_frame(
            lambda o: {"type": "tick", "instrument": ins, "seq": 1, "data": o}, "server", "tick")
    if key.startswith("user:") or key == "broadcast":
        ch = "broadcast" if key == "broadcast" else "user"
        return "message data", as_frame(
            lambda o: {"type": "message", "channel": ch, "data": o}, "server", "message")
    return None


def doc_examples(v, path=PROTOCOL_MD, text=None):
    """Every example of the markdown file PATH (or of TEXT), as DocExample objects, by
    the rules of PROTOCOL.md section 12 (summarised at the top of this file)."""
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    lines = text.split("\n")
    out = []
    marker = None  # (line number, kind/schema pair or None, expect_ok) for the next example
    i = 0
    while i < len(lines):
        n, line = i + 1, lines[i]
        if marker and marker[0] == n - 1 and not (_FENCE.match(line) or
                                                   line.lstrip().startswith("→")):
            out.append(DocExample(marker[0], "marker", problem="a marker must be right "
                                  "before a fenced block or a \"→\" line"))
            marker = None
        m = _MARKER.match(line)
        if m or _ANY_MARKER.match(line):
            words = m.group(1).split() if m else []
            expect_ok = not (words and words[0] == "invalid")
            words = words[1:] if not expect_ok else words
            try:
                if len(words) > 1 or (expect_ok and not words):
                    raise KeyError("expected <!-- example: [invalid] [KIND] -->")
                kind = v.kind_of(words[0]) if words else None
                marker = (n, kind, expect_ok)
            except KeyError as e:
                out.append(DocExample(n, "marker", problem=str(e).strip("'\"")))
                marker = None
            i += 1
            continue
        mk = marker if marker and marker[0] == n - 1 else None
        kind, expect_ok = (mk[1], mk[2]) if mk else (None, True)
        found = len(out)
        if line.lstrip().startswith("→"):
            for code in _CODE.findall(line):
                if code.startswith("{"):
                    out.append(_json_example(v, n, code, kind or ("server", "server"),
                                             expect_ok))
            if mk and len(out) == found:
                out.append(DocExample(n, "marker", problem="a marked line without an example"))
            marker = None
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            i += 1
            continue
        # a fenced block: find its end
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith(fence.group(1)):
            j += 1
        body = lines[i + 1:j]
        lang = fence.group(2).lower()
        marker = None
        i = j + 1
        if lang not in ("", "json"):  # js, python, sh...: code, not examples
            if mk:
                out.append(DocExample(n, "marker", problem="a marker on a %s block, which is "
                                      "never checked" % lang))
            continue
        if kind and kind[0] == "batch":
            raw = "\n".join(body)
            out.append(DocExample(n + 1, "batch", expect_ok,
                                  lambda raw=raw: v.check_raw(raw, "batch", "batch")))
            continue
        if lang == "json":
            out.extend(_json_block(v, n, body, kind, expect_ok))
            continue
        for k, row in enumerate(body, n + 1):
            fc = _FCALL.match(row)
            if fc:  # an overlay operation handed to the chartgate_overlay function (§17.2)
                if fc.group(1) != fc.group(2):
                    out.append(DocExample(k, "FCALL", problem="the key must be "
                                          "overlays:{<the instrument argument>}"))
                else:
                    payload = fc.group(3)
                    out.append(DocExample(k, "FCALL chartgate_overlay (overlay-op)", expect_ok,
                                          lambda p=payload, kd=kind or ("overlay-op",
                                                                        "overlay-op"):
                                          v.check_raw(p, *kd)))
                continue
            r = _REDIS.match(row)
            ex = _redis_example(v, r.group(2), r.group(3)) if r else None
            if ex and kind:
                payload = r.group(3)
                out.append(DocExample(k, "%s %s" % (r.group(1), r.group(2)), expect_ok,
                                      lambda p=payload, kd=kind: v.check_raw(p, *kd)))
            elif ex:
                out.append(DocExample(k, "%s %s (%s)" % (r.group(1), r.group(2), ex[0]),
                                      expect_ok, ex[1]))
            elif row.lstrip()[:1] in ("{", "["):
                if mk:
                    out.append(_json_example(v, k, row, kind, expect_ok))
                else:
                    out.append(DocExample(k, "json", problem="JSON in an untagged block: "
                                          "tag the block json or add a marker"))
        if mk and len(out) == found:
            out.append(DocExample(n, "marker", problem="a marked block without an example"))
    if marker:
        out.append(DocExample(marker[0], "marker", problem="a marker at the end of the file"))
    return out


def _json_example(v, n, raw, kind, expect_ok):
    """One JSON text at line N: checked as KIND, or by its discriminator when KIND is None."""
    def check():
        v.check_raw(raw, *(kind or _auto_kind(raw)))
    label = "frame"
    try:  # "client subscribe", "server tick", "session": for the report only
        k = kind or _auto_kind(raw)
        obj = json.loads(raw)
        name = k[1]
        if isinstance(obj, dict) and k[0] in ("client", "server"):
            name = obj.get("type") or obj.get("action") or name
        label = k[0] if name == k[0] else "%s %s" % (k[0], name)
    except (ValueError, KeyError):
        pass
    return DocExample(n, label, expect_ok, check)


def _json_block(v, n, body, kind, expect_ok):
    """The examples of a json block starting at line N: one per non-blank line, or the
    whole block when only the whole parses (a pretty-printed value)."""
    rows = [(k, line) for k, line in enumerate(body, n + 1) if line.strip()]
    if not rows:
        return [DocExample(n, "json", problem="an empty json block")]

    def parses(t):
        try:
            json.loads(t)
            return True
        except ValueError:
            return False
    if len(rows) > 1 and not all(parses(t) for _, t in rows) and parses("\n".join(body)):
        return [_json_example(v, rows[0][0], "\n".join(body), kind, expect_ok)]
    return [_json_example(v, k, line, kind, expect_ok) for k, line in rows]


# The rules above, applied to a document whose every outcome is known: a checker that
# silently stopped finding or rejecting examples would pass any document.
_RULES_DOC = """
```json
{"action":"ping","id":1}
```
→ `{"type":"pong","id":1}`

<!-- example: invalid -->
```json
{"action":"ping","id":1.5}
{"type":"pong","id":null}
```

```json
{"type":"subscribed","id":7,"instruments":["rb2501"],"intervals":[]}
```

<!-- example: batch -->
```
{"type":"pong"}
{"type":"pong","id":2}
```

<!-- example: session -->
```json
{"user_id":"u1"}
```

```
SET session:x '{"user_id":""}'
PUBLISH md:rb2501 '[1]'
RPUSH chartgate:inbox '{"broadcast":true,"data":1}'
```

```js
{"type":"nonsense"}
```

```
{"type":"pong"}
```

<!-- example: invalid -->
```
PUBLISH broadcast 'hello'
```

<!-- example: invalid -->
```js
{"type":"pong"}
```

<!-- example: nonsense -->
```json
{}
```
"""
_RULES_OUTCOMES = ["ok", "ok", "ok", "ok", "fail", "ok", "ok", "fail", "fail", "ok", "problem",
                   "ok", "problem", "problem", "fail"]


def _rules_self_test(v):
    """Checks the checker on _RULES_DOC; prints one line. Returns the number of surprises."""
    got = []
    for ex in doc_examples(v, text=_RULES_DOC):
        if ex.problem:
            got.append("problem")
            continue
        try:
            ex.check()
            valid = True
        except (ValidationError, ValueError, KeyError):
            valid = False
        got.append("ok" if valid == ex.expect_ok else "fail")
    if got != _RULES_OUTCOMES:
        print("FAIL  validate.py's markdown rules: %s, expected %s" % (got, _RULES_OUTCOMES))
        return 1
    print("ok    validate.py's markdown rules (%d cases)" % len(got))
    return 0


def _doc_self_test(v, path=PROTOCOL_MD):
    """Checks every example of PATH; prints one line each. Returns (checked, surprises)."""
    rel = os.path.relpath(path, os.path.dirname(HERE))
    surprises = checked = 0
    for ex in doc_examples(v, path):
        checked += 1
        where = "%s:%d %s" % (rel, ex.line, ex.label)
        if ex.problem:
            surprises += 1
            print("FAIL  %s: %s" % (where, ex.problem))
            continue
        try:
            ex.check()
            err = None
        except (ValidationError, ValueError, KeyError) as e:
            err = getattr(e, "message", None) or str(e)
        if ex.expect_ok and err is None:
            print("ok    %s" % where)
        elif not ex.expect_ok and err is not None:
            print("ok    %s (rejected as marked: %s)" % (where, err.splitlines()[0]))
        else:
            surprises += 1
            print("FAIL  %s: %s" % (where, err or "accepted but marked invalid"))
    if checked == 0:
        surprises += 1
        print("FAIL  no examples found in %s" % rel)
    return checked, surprises


def _self_test(v, example_dir=EXAMPLE_DIR, docs=(PROTOCOL_MD,)):
    surprises = 0
    checked = 0
    for sub, expect_ok in (("", True), ("invalid", False)):
        d = os.path.join(example_dir, sub)
        for fn in sorted(os.listdir(d)):
            path = os.path.join(d, fn)
            if not os.path.isfile(path):
                continue
            rel = os.path.relpath(path, os.path.dirname(HERE))
            checked += 1
            try:
                v.check_file(path)
                err = None
            except (ValidationError, ValueError, KeyError) as e:
                err = getattr(e, "message", None) or str(e)
            if expect_ok and err is None:
                print("ok    %s" % rel)
            elif not expect_ok and err is not None:
                print("ok    %s (rejected: %s)" % (rel, err.splitlines()[0]))
            else:
                surprises += 1
                print("FAIL  %s: %s" % (rel, err or "accepted but should be rejected"))
    if checked == 0:
        print("FAIL  no examples found in %s" % example_dir)
        return 1
    in_docs = 0
    surprises += _rules_self_test(v)
    for path in docs:
        n, bad = _doc_self_test(v, path)
        in_docs += n
        surprises += bad
    print("%d files, %d examples in %s, %d surprises"
          % (checked, in_docs, ", ".join(os.path.basename(d) for d in docs), surprises))
    return 1 if surprises else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return _self_test(load_validator())
    if len(argv) >= 3 and argv[1] == "--doc":
        v, bad = load_validator(), 0
        for path in argv[2:]:
            try:
                bad += _doc_self_test(v, path)[1]
            except OSError as e:
                bad += 1
                print("FAIL  %s: %s" % (path, e))
        return 1 if bad else 0
    if len(argv) >= 3 and not argv[1].startswith("-"):
        v = load_validator()
        kind, bad = argv[1], 0
        for path in argv[2:]:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
                if kind == "batch":
                    v.parse_server_message(raw)
                elif kind == "server":
                    v.validate_server_frame(json.loads(raw))
                elif kind == "client":
                    v.validate_client_frame(json.loads(raw))
                else:
                    v.validate(json.loads(raw), kind)
                print("ok    %s" % path)
            except (ValidationError, ValueError, KeyError, OSError) as e:
                bad += 1
                print("FAIL  %s: %s" % (path, getattr(e, "message", None) or e))
        return 1 if bad else 0
    sys.stderr.write("usage: validate.py --self-test | validate.py --doc FILE.md... |"
                     " validate.py KIND FILE...\n"
                     "  KIND: server, client, batch, session, envelope or a frame name\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
