#!/usr/bin/env node
// The bundled CLI (scripts/bundle.mjs; `npm run build` makes it): a few files to load instead
// of every module of every package.
import "../dist/bundle/main.js";
