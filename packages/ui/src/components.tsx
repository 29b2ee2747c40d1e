/** Small shared pieces: copy buttons (with a live-region announcement), sizes, ages, badges. */
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { formatAge, formatSize } from "./format.js";

let announce: (text: string) => void = () => {};

/** The polite live region that screen readers read copy confirmations from. */
export function Announcer() {
  const [text, setText] = useState("");
  announce = (t) => {
    setText("");
    setTimeout(() => setText(t), 30);
  };
  return (
    <div class="sr-only" role="status" aria-live="polite" id="announcer">
      {text}
    </div>
  );
}

/** Copies through the Clipboard API, or by selecting a hidden field where it is unavailable (plain http). */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall back below */
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.className = "offscreen";
  document.body.appendChild(ta);
  ta.select();
  let ok: boolean;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

export function CopyButton(props: { text: string; label: string; children?: ComponentChildren; class?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const onClick = async (ev: Event) => {
    ev.stopPropagation();
    const ok = await copyText(props.text);
    setState(ok ? "copied" : "failed");
    announce(ok ? `Copied ${props.label}` : `Could not copy ${props.label}`);
    setTimeout(() => setState("idle"), 1500);
  };
  return (
    <button type="button" class={`copy ${props.class ?? ""}`} onClick={onClick} aria-label={`Copy ${props.label}`} title={props.text} data-copy={props.text}>
      {props.children ?? "Copy"}
      <span class="copy-state" aria-hidden="true">
        {state === "copied" ? " ✓" : state === "failed" ? " ✗" : ""}
      </span>
    </button>
  );
}

export function Size(props: { bytes: number | null | undefined }) {
  return (
    <span class="num" data-bytes={props.bytes ?? ""} title={props.bytes === null || props.bytes === undefined ? undefined : `${props.bytes.toLocaleString("en")} bytes`}>
      {formatSize(props.bytes)}
    </span>
  );
}

export function Age(props: { iso: string | null | undefined }) {
  if (!props.iso) return <span class="muted">never</span>;
  return (
    <time dateTime={props.iso} title={new Date(props.iso).toLocaleString()}>
      {formatAge(props.iso)}
    </time>
  );
}

export function Badge(props: { kind: string; children: ComponentChildren; title?: string }) {
  return (
    <span class={`badge badge-${props.kind}`} title={props.title}>
      {props.children}
    </span>
  );
}

export function ErrorBox(props: { error: unknown }) {
  return (
    <p class="error" role="alert">
      {props.error instanceof Error ? props.error.message : String(props.error)}
    </p>
  );
}
