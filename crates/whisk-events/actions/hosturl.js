// The REST URL that activates an action (`action`) or fires a trigger (`trigger`) of the
// caller's namespace; with neither, the API's base URL.
function main(params) {
  const host = (process.env.__OW_API_HOST || '').replace(/\/+$/, '');
  const namespace = encodeURIComponent(process.env.__OW_NAMESPACE || '_');
  const base = `${host}/api/v1`;
  const path = (name) => String(name).split('/').filter(Boolean).map(encodeURIComponent).join('/');
  if (params.trigger) {
    return { url: `${base}/namespaces/${namespace}/triggers/${path(params.trigger)}` };
  }
  if (params.action) {
    return { url: `${base}/namespaces/${namespace}/actions/${path(params.action)}` };
  }
  return { url: base };
}
