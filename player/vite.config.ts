/**
 * Builds the player pages: `npx vite build --config player/vite.config.ts` → player/dist.
 * Relative base ('./'): the pages and their assets work under any path the origin serves them at.
 * No node:* imports (DESIGN.md §2 rule for player/): Vite provides import.meta.dirname.
 */
import { defineConfig } from 'vite';

const root = import.meta.dirname;

export default defineConfig({
  root,
  base: './',
  publicDir: false,
  clearScreen: false,
  build: {
    outDir: `${root}/dist`,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // hls.js alone is ~500 kB minified; one chunk per page is what we want.
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      input: {
        index: `${root}/index.html`,
        watch: `${root}/watch.html`,
        dashboard: `${root}/dashboard.html`,
        broadcast: `${root}/broadcast.html`,
      },
    },
  },
  server: {
    // `npx vite --config player/vite.config.ts` for UI work; the origin serves the real thing.
    fs: { allow: [`${root}/..`] },
  },
});
