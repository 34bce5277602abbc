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
                                          every file in proto/examples/invalid must fail
    proto/validate.py KIND FILE...        validate files; KIND is a schema name
                                          (server, client, tick, session, envelope, ...)
Exit status is 0 only when every check went as expected.
"""

import json
import os
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
SUFFIX = ".schema.json"

__all__ = ["load_validator", "Validator", "ValidationError", "split_message",
           "SCHEMA_DIR", "EXAMPLE_DIR"]


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
        kind, schema = self.kind_of(stem)
        with open(path, "rb") as f:
            raw = f.read()
        if kind == "batch":  # a raw WebSocket message: exact bytes matter
            self.parse_server_message(raw)
            return
        obj = json.loads(raw)
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


def _self_test(v, example_dir=EXAMPLE_DIR):
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
    print("%d files, %d surprises" % (checked, surprises))
    return 1 if surprises else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return _self_test(load_validator())
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
    sys.stderr.write("usage: validate.py --self-test | validate.py KIND FILE...\n"
                     "  KIND: server, client, batch, session, envelope or a frame name\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
