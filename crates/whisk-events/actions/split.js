// Splits the string `payload` on `separator` (default: line breaks) into `lines`.
function main(params) {
  const payload = params.payload === undefined ? '' : String(params.payload);
  const separator = params.separator === undefined ? /\r?\n/ : String(params.separator);
  return { lines: payload.split(separator), payload };
}
