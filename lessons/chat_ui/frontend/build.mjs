// Builds the page into dist/ (committed): `node build.mjs`, or `node build.mjs --outdir DIR`.
// The same sources, lockfile and esbuild version give the same bytes (a CI test checks it).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const flag = process.argv.indexOf('--outdir');
const outdir = flag === -1 ? join(here, 'dist') : process.argv[flag + 1];
mkdirSync(outdir, { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.jsx')],
  outfile: join(outdir, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  legalComments: 'none',
  charset: 'utf8',
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});
for (const name of ['index.html', 'app.css']) {
  writeFileSync(join(outdir, name), readFileSync(join(here, 'src', name)));
}
