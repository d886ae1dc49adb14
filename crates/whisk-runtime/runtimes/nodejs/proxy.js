// whisk-rs runtime proxy for Node.js actions (OpenWhisk runtime protocol, REFERENCE §13.2-13.5).
//
// Plain `node`, no npm packages: the container sees the host's node and this one file. It serves
// POST /init (load the action once) and POST /run (call it with the arguments), and writes the
// end-of-activation sentinel on stdout and stderr after each activation's own output.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const Module = require('module');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX';
const MAX_BODY = 80 * 1024 * 1024;

const state = {
  initialized: false,
  // Set after an action threw: the container is to be destroyed, later calls are refused.
  broken: false,
  fn: null,
};

function actionDir() {
  return process.env.__OW_ACTION_DIR || '/action';
}

// Sentinels go through the same streams as the action's own output, so they queue behind it
// (writes to a full pipe wait in the stream's buffer), and the reply waits until both are out:
// the invoker reads logs up to the sentinels, so nothing of this activation may follow them.
function writeSentinels() {
  return Promise.all([frame(process.stdout), frame(process.stderr)]);
}

function frame(stream) {
  return new Promise((resolve) => {
    try {
      stream.write(SENTINEL + '\n', () => resolve());
    } catch (e) {
      resolve(); // the stream is closed: nothing to frame
    }
  });
}

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function envText(value) {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value);
}

// ---- archives -------------------------------------------------------------------------------

function safeJoin(dir, name) {
  const target = path.resolve(dir, name);
  if (target !== dir && !target.startsWith(dir + path.sep)) {
    throw new Error('archive entry outside the action directory: ' + name);
  }
  return target;
}

// A small zip reader (central directory, stored and deflated entries): containers have no
// `unzip`, and npm packages are not available.
function unzip(buf, dir) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('not a zip archive');
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const links = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const madeByUnix = (buf.readUInt16LE(at + 4) >> 8) === 3;
    const method = buf.readUInt16LE(at + 10);
    const size = buf.readUInt32LE(at + 20);
    const nameLen = buf.readUInt16LE(at + 28);
    const extraLen = buf.readUInt16LE(at + 30);
    const commentLen = buf.readUInt16LE(at + 32);
    const external = buf.readUInt32LE(at + 38);
    const local = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLen);
    at += 46 + nameLen + extraLen + commentLen;
    const target = safeJoin(dir, name);
    if (name.endsWith('/')) { fs.mkdirSync(target, { recursive: true }); continue; }
    if (buf.readUInt32LE(local) !== 0x04034b50) throw new Error('corrupt zip entry ' + name);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + size);
    let data;
    if (method === 0) data = raw;
    else if (method === 8) data = zlib.inflateRawSync(raw);
    else throw new Error('unsupported zip compression method ' + method);
    const mode = madeByUnix ? (external >>> 16) : 0;
    if ((mode & 0o170000) === 0o120000) { links.push([data.toString('utf8'), target]); continue; }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, data);
    if (mode & 0o777) fs.chmodSync(target, mode & 0o777);
  }
  for (const [to, at2] of links) {
    fs.mkdirSync(path.dirname(at2), { recursive: true });
    fs.symlinkSync(to, at2);
  }
}

function untar(buf, dir) {
  let at = 0;
  let longName = null;
  while (at + 512 <= buf.length) {
    const header = buf.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (from, len) => header.toString('utf8', from, from + len).replace(/\0.*$/s, '');
    let name = field(0, 100);
    const prefix = field(345, 155);
    if (prefix && field(257, 6).startsWith('ustar')) name = prefix + '/' + name;
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const mode = parseInt(field(100, 8).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const data = buf.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') { longName = data.toString('utf8').replace(/\0.*$/s, ''); continue; }
    if (longName !== null) { name = longName; longName = null; }
    if (type === 'x' || type === 'g') continue;
    const target = safeJoin(dir, name);
    if (type === '5') { fs.mkdirSync(target, { recursive: true }); continue; }
    if (type === '2') {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.symlinkSync(field(157, 100), target);
      continue;
    }
    if (type !== '0' && type !== '\0' && type !== '7') continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, data);
    if (mode & 0o777) fs.chmodSync(target, mode & 0o777);
  }
}

// ---- loading --------------------------------------------------------------------------------

function compileSource(code, main, dir) {
  // Plain source needs no files: the directory only anchors relative `require`s.
  const filename = path.join(dir, 'action.js');
  const mod = new Module(filename, module);
  mod.filename = filename;
  mod.paths = Module._nodeModulePaths(dir);
  // The action names its function `main` at top level (or exports it); a trailing line hands
  // the top-level binding to us without changing the code's meaning.
  const simple = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(main);
  const handoff = simple
    ? `\n;module.exports.__whisk_main = (typeof ${main} === 'function') ? ${main} : undefined;\n`
    : '\n';
  mod._compile(code + handoff, filename);
  const exported = mod.exports[main];
  if (typeof exported === 'function') return exported;
  return mod.exports.__whisk_main;
}

function loadArchive(buf, main, dir) {
  fs.mkdirSync(dir, { recursive: true });
  if (buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50) unzip(buf, dir);
  else if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) untar(zlib.gunzipSync(buf), dir);
  else throw new Error('the binary action is neither a zip nor a tar.gz archive');
  // Archived actions read their own files by relative paths.
  process.chdir(dir);

  // `file.fn`: the function `fn` exported by `file.js`, when there is such a file.
  const dot = main.lastIndexOf('.');
  if (dot > 0) {
    const file = path.join(dir, main.slice(0, dot) + '.js');
    if (fs.existsSync(file)) return require(file)[main.slice(dot + 1)];
  }
  let entry = null;
  const pkg = path.join(dir, 'package.json');
  if (fs.existsSync(pkg)) {
    const meta = JSON.parse(fs.readFileSync(pkg, 'utf8'));
    entry = path.resolve(dir, meta.main || 'index.js');
  } else if (fs.existsSync(path.join(dir, 'index.js'))) {
    entry = path.join(dir, 'index.js');
  }
  if (entry === null) {
    // A plain message, not an Error: the reply quotes it without a stack.
    throw 'Zipped actions must contain either package.json or index.js at the root.';
  }
  // Otherwise a dotted `main` is a path through the entry module's exports (`a.b` = exports.a.b).
  return main.split('.').reduce((at, key) => (at == null ? undefined : at[key]), require(entry));
}

async function doInit(message) {
  const value = message && typeof message.value === 'object' && message.value !== null ? message.value : {};
  if (typeof value.main !== 'string' || typeof value.code !== 'string') {
    return [403, { error: 'Missing main/no code to execute.' }];
  }
  if (value.env && typeof value.env === 'object') {
    for (const [key, v] of Object.entries(value.env)) process.env[key] = envText(v);
  }
  try {
    const dir = actionDir();
    const fn = value.binary
      ? loadArchive(Buffer.from(value.code, 'base64'), value.main, dir)
      : compileSource(value.code, value.main, dir);
    if (typeof fn !== 'function') {
      throw `Action entrypoint '${value.main}' is not a function.`;
    }
    state.fn = fn;
    return [200, { OK: true }];
  } catch (err) {
    const text = err && err.stack ? String(err.stack) : String(err);
    console.error('Error during initialization:', text);
    await writeSentinels();
    return [502, { error: 'Initialization has failed due to: ' + text }];
  }
}

async function doRun(message) {
  if (state.broken) return [403, { error: 'The action can no longer run: an earlier activation failed.' }];
  if (!state.fn) return [403, { error: 'Missing main/no code to execute.' }];
  let args = message ? message.value : undefined;
  if (args === undefined || args === null) args = {};
  if (typeof args !== 'object' || Array.isArray(args)) {
    return [403, { error: 'The action arguments must be a JSON object.' }];
  }
  for (const [key, v] of Object.entries(message || {})) {
    if (key !== 'value') process.env['__OW_' + key.toUpperCase()] = envText(v);
  }
  let result;
  try {
    result = state.fn(args);
  } catch (err) {
    state.broken = true;
    console.error(err);
    await writeSentinels();
    return [502, { error: 'An error has occurred: ' + err }];
  }
  if (result && typeof result.then === 'function') {
    try {
      result = await result;
    } catch (err) {
      // A rejection is the action's own answer: an application error carrying the rejected
      // value (nothing, or any falsy value, becomes {}).
      await writeSentinels();
      return [200, { error: err ? serializeError(err) : {} }];
    }
  }
  if (result === undefined) result = {};
  await writeSentinels();
  // Arrays pass, as they do in OpenWhisk's runtime (the invoker accepts JSON arrays).
  if (result === null || typeof result !== 'object') {
    return [502, { error: 'The action did not return a dictionary.' }];
  }
  return [200, result];
}

// An Error keeps its name, message and stack (JSON would drop them, as they are not
// enumerable); other values go out as JSON makes them.
function serializeError(err, seen = new Set()) {
  if (err === null || typeof err !== 'object') {
    return typeof err === 'function' || typeof err === 'symbol' ? String(err) : err;
  }
  if (seen.has(err)) return '[Circular]';
  seen.add(err);
  if (Array.isArray(err)) return err.map((item) => serializeError(item, seen));
  const out = {};
  if (err instanceof Error) {
    out.name = err.name;
    out.message = err.message;
    out.stack = err.stack;
  }
  for (const [key, value] of Object.entries(err)) {
    if (typeof value !== 'function') out[key] = serializeError(value, seen);
  }
  return out;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) { reject(new Error('request too large')); req.destroy(); return; }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  if (req.method !== 'POST' || (req.url !== '/init' && req.url !== '/run')) {
    return reply(res, 404, { error: 'Not found' });
  }
  let message;
  try {
    message = JSON.parse(await readBody(req));
  } catch (err) {
    return reply(res, 400, { error: 'Error unmarshaling the request: ' + err.message });
  }
  if (req.url === '/init') {
    if (state.initialized) return reply(res, 403, { error: 'Cannot initialize the action more than once.' });
    state.initialized = true;
    const [status, body] = await doInit(message);
    return reply(res, status, body);
  }
  const [status, body] = await doRun(message);
  let text;
  try {
    text = JSON.stringify(body);
  } catch (err) {
    return reply(res, 502, { error: 'The action did not return a dictionary.' });
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function main() {
  const argv = process.argv.slice(2);
  let port = process.env.__OW_PROXY_PORT || '8080';
  const portArg = argv.indexOf('--port');
  if (portArg >= 0 && argv[portArg + 1]) port = argv[portArg + 1];
  const host = process.env.__OW_PROXY_HOST || '0.0.0.0';
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => reply(res, 500, { error: String(err) }));
  });
  // The invoker keeps one connection per container open between activations.
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.listen(Number(port), host, () => {
    const file = process.env.__OW_PROXY_PORT_FILE;
    if (file) {
      fs.writeFileSync(file + '.partial', String(server.address().port));
      fs.renameSync(file + '.partial', file);
    }
  });
}

main();
