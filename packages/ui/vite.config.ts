// Builds the UI into dist/: index.html plus content-hashed files under assets/ (served
// immutable by the registry). No inline script or style is emitted, so the registry's
// Content-Security-Policy can forbid them.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  // `npx vite` (development): the API and registry calls go to a local `strata serve`
  server: { proxy: { "/strata": "http://127.0.0.1:5000", "/v2": "http://127.0.0.1:5000" } },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
