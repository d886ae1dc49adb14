// Feed action of whisk-rs's event packages: hands the lifecycle event to the platform's feed
// provider with the caller's key, and returns the provider's error as the action's error so
// that a refused registration fails `wsk trigger create --feed`.
async function main(params) {
  const { authKey, ...rest } = params;
  if (!authKey) {
    return { error: 'the feed needs the authKey parameter (wsk sends it)' };
  }
  const host = (process.env.__OW_API_HOST || '').replace(/\/+$/, '');
  let response;
  try {
    response = await fetch(`${host}/api/v1/feeds/${FEED}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Basic ' + Buffer.from(authKey).toString('base64'),
      },
      body: JSON.stringify(rest),
    });
  } catch (error) {
    return { error: `cannot reach the feed provider: ${error.message}` };
  }
  let body = {};
  try {
    body = await response.json();
  } catch (_) {
    body = {};
  }
  if (!response.ok) {
    return { error: body.error || `the feed provider answered ${response.status}` };
  }
  return body;
}
