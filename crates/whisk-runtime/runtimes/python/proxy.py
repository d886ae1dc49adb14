"""whisk-rs runtime proxy for Python actions (OpenWhisk runtime protocol, REFERENCE §13.2-13.4, §13.6).

Standard library only: the container sees the host's python3 and this one file. Everything the
proxy itself needs is imported before it listens, so a container started ahead of demand (a stem
cell) answers /init by importing just the action.

POST /init loads the action once (source, or a base64 zip with __main__.py and an optional
virtualenv/ folder); POST /run calls its function with the arguments. After each activation the
end-of-activation sentinel goes to stdout and stderr, after the action's own output.
"""

import base64
import http.server
import importlib.util
import io
import json
import os
import socketserver
import sys
import tarfile
import threading
import traceback
import types
import zipfile

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
MAX_BODY = 80 * 1024 * 1024


class State:
    initialized = False
    fn = None
    lock = threading.Lock()


def write_sentinels():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
            stream.write(SENTINEL + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def env_text(value):
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


def action_dir():
    return os.environ.get("__OW_ACTION_DIR") or "/action"


def safe_extract(archive_bytes, directory):
    """Unpacks a zip or tar.gz, refusing entries that would land outside `directory`."""
    root = os.path.realpath(directory)
    if archive_bytes[:2] == b"\x1f\x8b":
        with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as archive:
            archive.extractall(directory, filter="data")
        return
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        for info in archive.infolist():
            target = os.path.realpath(os.path.join(directory, info.filename))
            if target != root and not target.startswith(root + os.sep):
                raise ValueError("archive entry outside the action directory: " + info.filename)
        archive.extractall(directory)


def load_action(value):
    """Returns the action's function; raises with a readable message when that fails."""
    main = value.get("main") or "main"
    code = value["code"]
    directory = action_dir()
    if value.get("binary"):
        os.makedirs(directory, exist_ok=True)
        safe_extract(base64.b64decode(code), directory)
        entry = os.path.join(directory, "__main__.py")
        if not os.path.isfile(entry):
            raise ValueError("Zip file does not include mandatory files.")
        venv = os.path.join(directory, "virtualenv")
        if os.path.isdir(venv):
            # The packages of a bundled virtualenv come first, whatever python minor it names.
            lib = os.path.join(venv, "lib")
            for name in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
                site = os.path.join(lib, name, "site-packages")
                if os.path.isdir(site):
                    sys.path.insert(0, site)
        sys.path.insert(0, directory)
        # Archived actions read their own files by relative paths.
        os.chdir(directory)
        spec = importlib.util.spec_from_file_location("__main__action__", entry)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = types.ModuleType("__main__action__")
        module.__file__ = os.path.join(directory, "__main__.py")
        exec(compile(code, module.__file__, "exec"), module.__dict__)
    fn = getattr(module, main, None)
    if not callable(fn):
        raise NameError("name '%s' is not defined" % main)
    return fn


def do_init(message):
    value = message.get("value") if isinstance(message, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("code"), str) or not value.get("code"):
        return 403, {"error": "Missing main/no code to execute."}
    env = value.get("env")
    if isinstance(env, dict):
        for key, item in env.items():
            os.environ[key] = env_text(item)
    # The replies of OpenWhisk's ActionLoop proxy: code that does not compile is a failure to
    # "generate a binary"; code that compiles but fails while importing "cannot start".
    try:
        State.fn = load_action(value)
        return 200, {"ok": True}
    except SyntaxError:
        traceback.print_exc()
        write_sentinels()
        return 502, {"error": "The action failed to generate or locate a binary. See logs for details."}
    except BaseException:  # an action's import may raise anything, SystemExit included
        traceback.print_exc()
        write_sentinels()
        return 502, {"error": "Cannot start action. Check logs for details."}


def do_run(message):
    if State.fn is None:
        return 500, {"error": "no action defined yet"}
    if not isinstance(message, dict):
        return 400, {"error": "Error unmarshaling the request: not a JSON object"}
    args = message.get("value")
    if args is None:
        args = {}
    for key, item in message.items():
        if key != "value":
            os.environ["__OW_" + key.upper()] = env_text(item)
    try:
        result = State.fn(args)
    except BaseException as ex:  # the launcher's rule: an uncaught exception is the action's error
        traceback.print_exc()
        result = {"error": str(ex)}
    write_sentinels()
    if isinstance(result, (dict, list)):
        return 200, result
    return 502, {"error": "The action did not return a dictionary or array."}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (about 40 ms on Linux) on every warm activation.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        # Request logs would mix with the action's own logs.
        pass

    def reply(self, status, body):
        try:
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError):
            status, text = 502, json.dumps({"error": "The action did not return a dictionary or array."}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
        self.wfile.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, {"error": "request too large"})
        raw = self.rfile.read(length)
        if self.path not in ("/init", "/run"):
            return self.reply(404, {"error": "Not found"})
        try:
            message = json.loads(raw)
        except ValueError as ex:
            return self.reply(400, {"error": "Error unmarshaling the request: %s" % ex})
        with State.lock:
            if self.path == "/init":
                if State.initialized:
                    return self.reply(403, {"error": "Cannot initialize the action more than once."})
                State.initialized = True
                status, body = do_init(message)
            else:
                status, body = do_run(message)
        self.reply(status, body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port = os.environ.get("__OW_PROXY_PORT") or "8080"
    if "--port" in sys.argv[1:-1]:
        port = sys.argv[sys.argv.index("--port") + 1]
    host = os.environ.get("__OW_PROXY_HOST") or "0.0.0.0"
    server = Server((host, int(port)), Handler)
    port_file = os.environ.get("__OW_PROXY_PORT_FILE")
    if port_file:
        with open(port_file + ".partial", "w") as out:
            out.write(str(server.server_address[1]))
        os.rename(port_file + ".partial", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
