// Lint configuration: ESLint's and typescript-eslint's recommended rules for every source,
// test and script in the repository.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/build/**", "**/node_modules/**", "**/native/build/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { process: "readonly", console: "readonly", Buffer: "readonly", URL: "readonly", fetch: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", AbortSignal: "readonly", AbortController: "readonly", performance: "readonly", structuredClone: "readonly", TextDecoder: "readonly", TextEncoder: "readonly", setImmediate: "readonly", queueMicrotask: "readonly", Response: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-control-regex": "off",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
);
