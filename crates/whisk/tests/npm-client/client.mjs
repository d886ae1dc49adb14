// Drives a running whisk-rs with the official `openwhisk` npm client, unmodified.
// Usage: node client.mjs <apihost url> <uuid:key> [entities|invoke]
//   entities (default): every entity type through the API (no invoker needed);
//   invoke: actions run in real containers, and their activations read back.
// Exits non-zero (with the failing assertion) if any call does not behave as on OpenWhisk.
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';

const [apihost, apiKey, mode = 'entities'] = process.argv.slice(2);
const ow = openwhisk({ apihost, api_key: apiKey });
const code = 'function main(params) { return { greeting: "hello " + params.name }; }';

async function expectStatus(promise, status) {
  try {
    await promise;
  } catch (error) {
    assert.equal(error.statusCode, status, `expected HTTP ${status}, got ${error.statusCode}: ${error.message}`);
    return error;
  }
  assert.fail(`expected HTTP ${status}, but the call succeeded`);
}

// Every entity type, created, read, updated, listed and deleted through the API.
async function entityChecks() {
  // Actions
  const created = await ow.actions.create({ name: 'npm-hello', action: code, kind: 'nodejs:default' });
  assert.equal(created.name, 'npm-hello');
  assert.equal(created.exec.kind, 'nodejs:20');
  assert.equal(created.version, '0.0.1');
  await expectStatus(ow.actions.create({ name: 'npm-hello', action: code }), 409);

  const fetched = await ow.actions.get({ name: 'npm-hello' });
  assert.equal(fetched.exec.code, code);
  assert.deepEqual(
    fetched.annotations.find((a) => a.key === 'provide-api-key'),
    { key: 'provide-api-key', value: false },
  );

  const updated = await ow.actions.update({
    name: 'npm-hello',
    action: code,
    params: { name: 'world' },
    annotations: { description: 'says hello' },
  });
  assert.equal(updated.version, '0.0.2');
  assert.deepEqual(updated.parameters, [{ key: 'name', value: 'world' }]);
  assert.ok(updated.annotations.some((a) => a.key === 'description' && a.value === 'says hello'));

  const actions = await ow.actions.list();
  assert.ok(actions.some((a) => a.name === 'npm-hello'), 'action missing from the list');

  // Packages and bindings
  const pkg = await ow.packages.create({
    name: 'npm-utils',
    package: { publish: true, parameters: [{ key: 'from', value: 'package' }] },
  });
  assert.equal(pkg.name, 'npm-utils');
  assert.equal(pkg.publish, true);
  await ow.actions.create({ name: 'npm-utils/echo', action: code });
  const binding = await ow.packages.create({
    name: 'npm-bound',
    package: { binding: { namespace: '_', name: 'npm-utils' }, parameters: [{ key: 'from', value: 'binding' }] },
  });
  assert.equal(binding.binding.name, 'npm-utils');
  const boundView = await ow.packages.get({ name: 'npm-bound' });
  assert.deepEqual(boundView.actions.map((a) => a.name), ['echo']);
  const packages = await ow.packages.list();
  assert.deepEqual(packages.map((p) => p.name).sort(), ['npm-bound', 'npm-utils']);
  await ow.packages.update({ name: 'npm-utils', package: { publish: false } });
  assert.equal((await ow.packages.get({ name: 'npm-utils' })).publish, false);

  // Triggers and rules
  const trigger = await ow.triggers.create({ name: 'npm-trigger', trigger: { parameters: [{ key: 't', value: 1 }] } });
  assert.equal(trigger.name, 'npm-trigger');
  const rule = await ow.rules.create({ name: 'npm-rule', trigger: 'npm-trigger', action: 'npm-hello' });
  assert.equal(rule.status, 'active');
  assert.equal(rule.trigger.name, 'npm-trigger');
  assert.equal(rule.action.name, 'npm-hello');
  await ow.rules.disable({ name: 'npm-rule' });
  assert.equal((await ow.rules.get({ name: 'npm-rule' })).status, 'inactive');
  await ow.rules.enable({ name: 'npm-rule' });
  assert.equal((await ow.rules.get({ name: 'npm-rule' })).status, 'active');
  const updatedTrigger = await ow.triggers.update({ name: 'npm-trigger', trigger: { parameters: [{ key: 't', value: 2 }] } });
  assert.equal(updatedTrigger.version, '0.0.2');
  assert.ok((await ow.rules.list()).some((r) => r.name === 'npm-rule'));
  assert.ok((await ow.triggers.list()).some((t) => t.name === 'npm-trigger'));

  // Routes through the built-in API gateway (the `apimgmt` endpoints)
  await ow.actions.create({ name: 'npm-web', action: code, annotations: { 'web-export': true } });
  const route = await ow.routes.create({ basepath: '/npm', relpath: '/hello', operation: 'GET', action: 'npm-web' });
  assert.equal(route.apidoc.basePath, '/npm');
  const operation = route.apidoc.paths['/hello'].get['x-openwhisk'];
  assert.equal(operation.action, 'npm-web');
  assert.ok(operation.namespace !== '_', 'the caller namespace replaces _');
  assert.ok(route.gwApiUrl.endsWith('/npm'), route.gwApiUrl);
  assert.equal((await ow.routes.get({ basepath: '/npm' })).apis.length, 1);
  assert.ok((await ow.routes.list()).apis.some((api) => api.value.apidoc.basePath === '/npm'));
  await ow.routes.delete({ basepath: '/npm', relpath: '/hello', operation: 'GET' });
  assert.deepEqual((await ow.routes.list()).apis, []);
  await ow.actions.delete({ name: 'npm-web' });

  // Deletes, and what is gone stays gone
  await ow.rules.delete({ name: 'npm-rule' });
  await ow.triggers.delete({ name: 'npm-trigger' });
  await ow.packages.delete({ name: 'npm-bound' });
  await ow.actions.delete({ name: 'npm-utils/echo' });
  await ow.packages.delete({ name: 'npm-utils' });
  await ow.actions.delete({ name: 'npm-hello' });
  await expectStatus(ow.actions.get({ name: 'npm-hello' }), 404);
  await expectStatus(ow.rules.get({ name: 'npm-rule' }), 404);
  assert.deepEqual(await ow.packages.list(), []);
}

// Polls activations.get until the record is stored: records are written after the result is
// known, so a client reads them when they appear (60 s at most).
async function waitForActivation(activationId) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await ow.activations.get({ activationId });
    } catch (error) {
      if (error.statusCode !== 404 || Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Polls activations.list for an action until it holds `count` records (60 s at most).
async function waitForList(name, count) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const listed = await ow.activations.list({ name });
    if (listed.length >= count) return listed;
    assert.ok(Date.now() < deadline, `only ${listed.length} of ${count} activations of ${name} listed`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Actions invoked blocking and non-blocking in real containers, and their activations read back:
// the record, the result, the logs and the list.
async function invokeChecks() {
  const echo = [
    'function main(params) {',
    '  console.log("hello " + params.name);',
    '  console.error("to stderr");',
    '  return { greeting: "hello " + params.name, n: params.n };',
    '}',
  ].join('\n');
  await ow.actions.create({ name: 'npm-echo', action: echo, params: { n: 1 } });

  // Blocking: the whole activation record.
  const record = await ow.actions.invoke({ name: 'npm-echo', params: { name: 'Ann' }, blocking: true });
  assert.match(record.activationId, /^[0-9a-f]{32}$/);
  assert.equal(record.name, 'npm-echo');
  assert.equal(record.namespace, 'guest');
  assert.equal(record.subject, 'guest');
  assert.equal(record.response.status, 'success');
  assert.equal(record.response.success, true);
  assert.deepEqual(record.response.result, { greeting: 'hello Ann', n: 1 });
  assert.ok(record.annotations.some((a) => a.key === 'kind' && a.value === 'nodejs:20'));
  assert.ok(record.annotations.some((a) => a.key === 'path' && a.value === 'guest/npm-echo'));

  // Blocking with `result: true`: just the result (the client unwraps it).
  const result = await ow.actions.invoke({
    name: 'npm-echo',
    params: { name: 'Bo', n: 2 },
    blocking: true,
    result: true,
  });
  assert.deepEqual(result, { greeting: 'hello Bo', n: 2 });

  // Non-blocking: an activation id at once, the record once the action has run.
  const accepted = await ow.actions.invoke({ name: 'npm-echo', params: { name: 'Cy' } });
  assert.deepEqual(Object.keys(accepted), ['activationId']);
  assert.match(accepted.activationId, /^[0-9a-f]{32}$/);
  const polled = await waitForActivation(accepted.activationId);
  assert.equal(polled.activationId, accepted.activationId);
  assert.equal(polled.name, 'npm-echo');
  assert.deepEqual(polled.response.result, { greeting: 'hello Cy', n: 1 });
  assert.ok(polled.end >= polled.start, `end ${polled.end} before start ${polled.start}`);
  assert.equal(polled.duration, polled.end - polled.start);

  const only = await ow.activations.result({ activationId: accepted.activationId });
  assert.deepEqual(only.result, { greeting: 'hello Cy', n: 1 });
  assert.equal(only.success, true);
  assert.equal(only.status, 'success');
  assert.equal(typeof only.size, 'number');

  const { logs } = await ow.activations.logs({ activationId: accepted.activationId });
  assert.ok(logs.some((line) => / stdout: hello Cy$/.test(line)), JSON.stringify(logs));
  assert.ok(logs.some((line) => / stderr: to stderr$/.test(line)), JSON.stringify(logs));
  for (const line of logs) {
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z +std(out|err): /);
  }
  // The blocking record is stored as well, logs included.
  const stored = await waitForActivation(record.activationId);
  assert.ok(stored.logs.some((line) => / stdout: hello Ann$/.test(line)), JSON.stringify(stored.logs));

  // The list: newest first, summaries without results, `limit`, `docs` and `count`.
  const listed = await waitForList('npm-echo', 3);
  assert.equal(listed.length, 3);
  assert.ok(listed.some((a) => a.activationId === record.activationId));
  assert.ok(listed.some((a) => a.activationId === accepted.activationId));
  for (const summary of listed) {
    assert.equal(summary.name, 'npm-echo');
    assert.equal(summary.namespace, 'guest');
    assert.equal(summary.statusCode, 0);
    assert.equal(summary.response, undefined, 'summaries carry no response');
  }
  for (let i = 1; i < listed.length; i++) {
    assert.ok(listed[i - 1].start >= listed[i].start, 'newest first');
  }
  const newest = await ow.activations.list({ name: 'npm-echo', limit: 1 });
  assert.deepEqual(newest.map((a) => a.activationId), [listed[0].activationId]);
  const docs = await ow.activations.list({ name: 'npm-echo', docs: true });
  assert.ok(docs.every((a) => a.response && a.response.success === true), JSON.stringify(docs));
  assert.deepEqual(await ow.activations.list({ name: 'npm-echo', count: true }), { activations: 3 });
  assert.deepEqual(await ow.activations.list({ name: 'npm-nothing' }), []);

  // An application error: a blocking invoke answers 502 with the record, which the client
  // hands over as the error body; `result: true` gets the same refusal.
  await ow.actions.create({ name: 'npm-fail', action: 'function main() { return { error: "bad input" }; }' });
  const failed = await expectStatus(ow.actions.invoke({ name: 'npm-fail', blocking: true }), 502);
  assert.equal(failed.error.response.status, 'application error');
  assert.deepEqual(failed.error.response.result, { error: 'bad input' });
  assert.match(failed.message, /bad input/);
  await expectStatus(ow.actions.invoke({ name: 'npm-fail', blocking: true, result: true }), 502);

  // What does not exist is a 404 for the client.
  await expectStatus(ow.actions.invoke({ name: 'npm-missing', blocking: true }), 404);
  await expectStatus(ow.activations.get({ activationId: '0123456789abcdef0123456789abcdef' }), 404);

  await ow.actions.delete({ name: 'npm-echo' });
  await ow.actions.delete({ name: 'npm-fail' });
}

if (mode === 'entities') {
  await entityChecks();
} else if (mode === 'invoke') {
  await invokeChecks();
} else {
  assert.fail(`unknown mode ${mode}: entities or invoke`);
}
console.log(`npm client: all ${mode} checks passed`);
