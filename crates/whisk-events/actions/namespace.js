// The namespace of the key this action runs with.
function main() {
  return { namespace: process.env.__OW_NAMESPACE };
}
