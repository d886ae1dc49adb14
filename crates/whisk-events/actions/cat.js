// Joins the array `lines` into one string `payload` (one line each).
function main(params) {
  const lines = Array.isArray(params.lines) ? params.lines : [];
  return { lines, payload: lines.join('\n') };
}
