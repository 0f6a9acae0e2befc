// Technician input → INPUT messages: pointer and wheel mapped back to remote pixels, keys as X11 keysyms
// (the wire's key naming, as in RFB/noVNC), characters outside ASCII as TEXT so that é ç ë € arrive whatever
// the remote keyboard layout is. A visible key combination (Ctrl+Alt+Shift) releases the keyboard; losing
// focus sends RELEASE_ALL so that no key stays pressed on the remote side.

import type { Bytes } from "./bytes";
import {
  MAX_TEXT_BYTES,
  PointerButton,
  encodeKey,
  encodePointerButton,
  encodePointerMove,
  encodeReleaseAll,
  encodeText,
  encodeWheel,
} from "./screenproto";

/** Keys by KeyboardEvent.key: X11 keysyms (keysymdef.h). */
const NAMED_KEYS: Record<string, number> = {
  Backspace: 0xff08,
  Tab: 0xff09,
  Enter: 0xff0d,
  Pause: 0xff13,
  ScrollLock: 0xff14,
  Escape: 0xff1b,
  Home: 0xff50,
  ArrowLeft: 0xff51,
  ArrowUp: 0xff52,
  ArrowRight: 0xff53,
  ArrowDown: 0xff54,
  PageUp: 0xff55,
  PageDown: 0xff56,
  End: 0xff57,
  PrintScreen: 0xff61,
  Insert: 0xff63,
  ContextMenu: 0xff67,
  NumLock: 0xff7f,
  CapsLock: 0xffe5,
  Delete: 0xffff,
  AltGraph: 0xfe03, // ISO_Level3_Shift
  Clear: 0xff0b,
  Help: 0xff6a,
};

/** Modifiers by KeyboardEvent.code, so left and right stay apart. */
const MODIFIER_CODES: Record<string, number> = {
  ShiftLeft: 0xffe1,
  ShiftRight: 0xffe2,
  ControlLeft: 0xffe3,
  ControlRight: 0xffe4,
  AltLeft: 0xffe9,
  AltRight: 0xffea,
  MetaLeft: 0xffeb, // Super_L
  MetaRight: 0xffec,
  OSLeft: 0xffeb,
  OSRight: 0xffec,
};

const MODIFIER_KEYS: Record<string, number> = { Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, Meta: 0xffeb, OS: 0xffeb };

/** Numeric keypad keys by code, so Enter and digits on the keypad stay keypad keys. */
const KEYPAD_CODES: Record<string, number> = {
  NumpadEnter: 0xff8d,
  NumpadMultiply: 0xffaa,
  NumpadAdd: 0xffab,
  NumpadSubtract: 0xffad,
  NumpadDecimal: 0xffae,
  NumpadDivide: 0xffaf,
};

/** The keysym of one Unicode character: Latin-1 maps to itself, the rest to 0x01000000 + code point. */
export function charKeysym(char: string): number {
  const cp = char.codePointAt(0) ?? 0;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  return 0x01000000 + cp;
}

function isSingleCharacter(key: string): boolean {
  const chars = [...key];
  return chars.length === 1 && (chars[0]!.codePointAt(0) ?? 0) >= 0x20;
}

export type KeyAction =
  | { kind: "key"; keysym: number }
  | { kind: "text"; text: string }
  | { kind: "release" }
  | { kind: "ignore" };

/** What one keydown becomes. Exported for the tests. */
// Own keys only: "constructor" or "toString" must never look like a key name.
function has(table: Record<string, number>, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(table, name);
}

export function keyDownAction(event: Pick<KeyboardEvent, "key" | "code" | "ctrlKey" | "altKey" | "shiftKey" | "metaKey"> & {
  altGraph?: boolean;
}): KeyAction {
  const { key, code } = event;
  const isModifier = has(MODIFIER_KEYS, key) || has(MODIFIER_CODES, code);
  // The release combination: Ctrl + Alt + Shift held together (completed by pressing the last of the three).
  if (isModifier && event.ctrlKey && event.altKey && event.shiftKey) return { kind: "release" };
  if (key === "Dead" || key === "Process" || key === "Unidentified" || key === "Compose") return { kind: "ignore" };
  if (has(MODIFIER_CODES, code) && key !== "AltGraph") return { kind: "key", keysym: MODIFIER_CODES[code]! };
  if (has(MODIFIER_KEYS, key)) return { kind: "key", keysym: MODIFIER_KEYS[key]! };
  if (has(KEYPAD_CODES, code)) return { kind: "key", keysym: KEYPAD_CODES[code]! };
  if (has(NAMED_KEYS, key)) return { kind: "key", keysym: NAMED_KEYS[key]! };
  const fn = /^F([1-9]|1[0-9]|2[0-4])$/.exec(key);
  if (fn) return { kind: "key", keysym: 0xffbe + Number(fn[1]) - 1 };
  if (!isSingleCharacter(key)) return { kind: "ignore" };
  const cp = key.codePointAt(0)!;
  // A shortcut (Ctrl+C, Alt+F4…) must reach the remote side as keys, not as text. AltGr (Ctrl+Alt on Windows)
  // produces characters, so it is not a shortcut.
  const shortcut = (event.ctrlKey || event.altKey || event.metaKey) && !event.altGraph;
  if (shortcut || (cp >= 0x20 && cp <= 0x7e)) return { kind: "key", keysym: charKeysym(key) };
  return { kind: "text", text: key };
}

export interface InputSink {
  /** Send one INPUT-channel message. */
  send(payload: Bytes): void;
  /** The remote frame size (pointer coordinates are scaled to it). */
  frameSize(): { width: number; height: number };
}

const BUTTONS: Record<number, PointerButton> = {
  0: PointerButton.LEFT,
  1: PointerButton.MIDDLE,
  2: PointerButton.RIGHT,
  3: PointerButton.BACK,
  4: PointerButton.FORWARD,
};

/** Wheel units per CSS pixel: one 100-pixel notch (Chromium on Windows/Linux) becomes one 120-unit notch. */
const WHEEL_PER_PIXEL = 1.2;
const WHEEL_PER_LINE = 40;
const WHEEL_PER_PAGE = 120 * 3;

export class InputCapture {
  private captured = false;
  private readonly held = new Map<string, number>();
  private buttons = 0;
  private pendingMove: { x: number; y: number } | null = null;
  private moveFrame: number | null = null;
  private wheel = { dx: 0, dy: 0 };
  private readonly stoppers: (() => void)[] = [];
  enabled = false;
  onCaptureChange: ((captured: boolean) => void) | null = null;

  /**
   * @param surface the element that takes focus and keys (wraps the canvas)
   * @param canvas the screen canvas (pointer coordinates are relative to its box)
   */
  constructor(
    private readonly surface: HTMLElement,
    private readonly canvas: HTMLCanvasElement,
    private readonly sink: InputSink,
  ) {
    const on = <K extends keyof HTMLElementEventMap>(
      target: HTMLElement,
      type: K,
      handler: (event: HTMLElementEventMap[K]) => void,
      options?: AddEventListenerOptions,
    ): void => {
      target.addEventListener(type, handler, options);
      this.stoppers.push(() => target.removeEventListener(type, handler, options));
    };
    on(surface, "keydown", (e) => this.keyDown(e));
    on(surface, "keyup", (e) => this.keyUp(e));
    on(surface, "focus", () => this.setCaptured(true));
    on(surface, "blur", () => this.release());
    on(canvas, "pointermove", (e) => this.pointerMove(e));
    on(canvas, "pointerdown", (e) => this.pointerButton(e, true));
    on(canvas, "pointerup", (e) => this.pointerButton(e, false));
    on(canvas, "wheel", (e) => this.wheelEvent(e), { passive: false });
    on(canvas, "contextmenu", (e) => {
      if (this.enabled) e.preventDefault();
    });
  }

  isCaptured(): boolean {
    return this.captured;
  }

  /** Give the keyboard back to the console: every held key and button is released on the remote side. */
  release(): void {
    if (this.held.size > 0 || this.buttons !== 0 || this.captured) {
      if (this.enabled) this.sink.send(encodeReleaseAll());
    }
    this.held.clear();
    this.buttons = 0;
    this.setCaptured(false);
    if (document.activeElement === this.surface) this.surface.blur();
  }

  capture(): void {
    if (!this.enabled) return;
    this.surface.focus();
    this.setCaptured(true);
  }

  dispose(): void {
    this.release();
    for (const stop of this.stoppers) stop();
    if (this.moveFrame !== null) cancelAnimationFrame(this.moveFrame);
  }

  /** Maps a point in the page to remote pixels, clamped into the frame. Exported behaviour for the tests. */
  remotePoint(clientX: number, clientY: number): { x: number; y: number } | null {
    const { width, height } = this.sink.frameSize();
    const box = this.canvas.getBoundingClientRect();
    if (width === 0 || height === 0 || box.width === 0 || box.height === 0) return null;
    const x = Math.floor(((clientX - box.left) / box.width) * width);
    const y = Math.floor(((clientY - box.top) / box.height) * height);
    return { x: Math.max(0, Math.min(width - 1, x)), y: Math.max(0, Math.min(height - 1, y)) };
  }

  private setCaptured(captured: boolean): void {
    const next = captured && this.enabled;
    if (next === this.captured) return;
    this.captured = next;
    this.onCaptureChange?.(next);
  }

  private keyDown(event: KeyboardEvent): void {
    if (!this.enabled || !this.captured || event.isComposing) return;
    const action = keyDownAction({
      key: event.key,
      code: event.code,
      ctrlKey: event.ctrlKey,
      altKey: event.altKey,
      shiftKey: event.shiftKey,
      metaKey: event.metaKey,
      altGraph: event.getModifierState("AltGraph"),
    });
    if (action.kind === "ignore") return;
    event.preventDefault();
    event.stopPropagation();
    switch (action.kind) {
      case "release":
        this.release();
        return;
      case "text":
        if (new TextEncoder().encode(action.text).length <= MAX_TEXT_BYTES) this.sink.send(encodeText(action.text));
        return;
      case "key":
        // Remember what went down under this physical key, so the matching key-up is sent even if the
        // modifiers (and so event.key) changed in between.
        this.held.set(event.code || event.key, action.keysym);
        this.sink.send(encodeKey(action.keysym, true));
        return;
    }
  }

  private keyUp(event: KeyboardEvent): void {
    if (!this.enabled || !this.captured) return;
    const id = event.code || event.key;
    const keysym = this.held.get(id);
    if (keysym === undefined) return;
    event.preventDefault();
    this.held.delete(id);
    this.sink.send(encodeKey(keysym, false));
  }

  private pointerMove(event: PointerEvent): void {
    if (!this.enabled) return;
    const point = this.remotePoint(event.clientX, event.clientY);
    if (!point) return;
    // At most one move per animation frame: the agent coalesces too, but the relay need not carry them.
    this.pendingMove = point;
    if (this.moveFrame === null) {
      this.moveFrame = requestAnimationFrame(() => {
        this.moveFrame = null;
        this.flushMove();
      });
    }
  }

  private flushMove(): void {
    const move = this.pendingMove;
    this.pendingMove = null;
    if (move) this.sink.send(encodePointerMove(move.x, move.y));
  }

  private pointerButton(event: PointerEvent, down: boolean): void {
    if (!this.enabled) return;
    const button = BUTTONS[event.button];
    const point = this.remotePoint(event.clientX, event.clientY);
    if (button === undefined || !point) return;
    event.preventDefault();
    if (down) {
      this.capture();
      this.canvas.setPointerCapture?.(event.pointerId);
      this.buttons |= 1 << event.button;
    } else {
      if ((this.buttons & (1 << event.button)) === 0) return;
      this.buttons &= ~(1 << event.button);
    }
    // A pending move must not arrive after the click it preceded.
    if (this.moveFrame !== null) {
      cancelAnimationFrame(this.moveFrame);
      this.moveFrame = null;
    }
    this.pendingMove = null;
    this.sink.send(encodePointerButton(button, down, point.x, point.y));
  }

  private wheelEvent(event: WheelEvent): void {
    if (!this.enabled) return;
    event.preventDefault();
    const scale =
      event.deltaMode === WheelEvent.DOM_DELTA_LINE ? WHEEL_PER_LINE : event.deltaMode === WheelEvent.DOM_DELTA_PAGE ? WHEEL_PER_PAGE : WHEEL_PER_PIXEL;
    this.wheel.dx += event.deltaX * scale;
    this.wheel.dy += event.deltaY * scale;
    const dx = Math.trunc(this.wheel.dx);
    const dy = Math.trunc(this.wheel.dy);
    if (dx === 0 && dy === 0) return;
    this.wheel.dx -= dx;
    this.wheel.dy -= dy;
    const point = this.remotePoint(event.clientX, event.clientY);
    if (point) this.flushMoveTo(point);
    this.sink.send(encodeWheel(dx, dy));
  }

  private flushMoveTo(point: { x: number; y: number }): void {
    if (this.moveFrame !== null) {
      cancelAnimationFrame(this.moveFrame);
      this.moveFrame = null;
    }
    this.pendingMove = point;
    this.flushMove();
  }
}
