// Drives a running whisk-rs with the official `openwhisk` npm client, unmodified.
// Usage: node client.mjs <apihost url> <uuid:key>
// Exits non-zero (with the failing assertion) if any call does not behave as on OpenWhisk.
import assert from 'node:assert/strict';
import openwhisk from 'openwhisk';

const [apihost, apiKey] = process.argv.slice(2);
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

console.log('npm client: all checks passed');
