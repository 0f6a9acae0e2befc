"""X11 input through XTest, and the text clipboard through X selections (python-xlib, no helper programs).

Characters that the current keymap cannot type (é on a US layout, €...) are typed the way xdotool does it:
a spare keycode (one with no keysyms) is bound to the character's keysym, pressed and released, and the
binding is undone once input has been quiet for a second (``restore_keymap``), by which time every client
has read the key events with the binding they were sent under.

The clipboard is served by our own hidden window (ICCCM: answer TARGETS / UTF8_STRING / STRING / TEXT on
SelectionRequest) from a thread that owns that X connection; reading it converts the selection into a property
of another window. python-xlib was chosen over xclip/xsel: nothing to install on end users' machines, and no
child process per copy.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from Xlib import XK, X, Xatom, display
from Xlib.error import DisplayError, XError
from Xlib.ext import xfixes, xtest
from Xlib.protocol import event as xevent

from .backend import InputError

#: X wheel buttons: 4 up, 5 down, 6 left, 7 right.
_WHEEL_BUTTONS = {(0, -1): 4, (0, 1): 5, (-1, 0): 6, (1, 0): 7}
_SHIFT = {XK.XK_Shift_L, XK.XK_Shift_R}
#: How long a clipboard read waits for the owner to answer.
CLIPBOARD_TIMEOUT = 1.0
#: Largest clipboard text read or served (bytes), as in the wire format.
MAX_CLIPBOARD = 512 * 1024
#: Characters typed through a keysym of their own rather than a key (control characters of text input).
_TEXT_KEYS = {"\n": XK.XK_Return, "\r": XK.XK_Return, "\t": XK.XK_Tab, "\b": XK.XK_BackSpace}


def char_to_keysym(char: str) -> int:
    """The X keysym of a character: Latin-1 maps to itself, the rest to 0x01000000 + code point."""
    if char in _TEXT_KEYS:
        return _TEXT_KEYS[char]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 | code


def _open(display_name: str | None) -> display.Display:
    try:
        return display.Display(display_name)
    except (DisplayError, OSError) as exc:
        raise InputError(f"cannot open the display: {exc}") from exc


class XTestBackend:
    """Injects pointer and keyboard input on an X display with XTest. Use from one thread."""

    def __init__(self, display_name: str | None = None, *, scratch_keys: int = 8) -> None:
        self._display = _open(display_name)
        if not self._display.has_extension("XTEST"):
            self._display.close()
            raise InputError("the X server has no XTEST extension")
        info = self._display.display.info
        self._min_keycode, self._max_keycode = int(info.min_keycode), int(info.max_keycode)
        count = self._max_keycode - self._min_keycode + 1
        mapping = self._display.get_keyboard_mapping(self._min_keycode, count)
        self._per_code = len(mapping[0]) if mapping else 2
        spare = [self._min_keycode + i for i, syms in enumerate(mapping) if not any(syms)]
        # Highest codes first: the least likely to be a real key someone presses meanwhile.
        self._spare = sorted(spare, reverse=True)[:scratch_keys]
        self._scratch: dict[int, int] = {}  # keysym -> spare keycode bound to it, in use order
        self._held_keys: dict[int, int] = {}  # keysym -> keycode pressed for it
        self._held_buttons: set[int] = set()

    # ------------------------------------------------------------------ pointer

    def pointer_move(self, x: int, y: int) -> None:
        xtest.fake_input(self._display, X.MotionNotify, x=max(0, x), y=max(0, y))
        self._display.flush()

    def pointer_button(self, button: int, down: bool) -> None:
        xtest.fake_input(self._display, X.ButtonPress if down else X.ButtonRelease, button)
        if down:
            self._held_buttons.add(button)
        else:
            self._held_buttons.discard(button)
        self._display.flush()

    def wheel(self, steps_x: int, steps_y: int) -> None:
        for steps, axis in ((steps_y, (0, 1)), (steps_x, (1, 0))):
            if not steps:
                continue
            button = _WHEEL_BUTTONS[(axis[0] * (1 if steps > 0 else -1), axis[1] * (1 if steps > 0 else -1))]
            for _ in range(min(abs(steps), 50)):
                xtest.fake_input(self._display, X.ButtonPress, button)
                xtest.fake_input(self._display, X.ButtonRelease, button)
        self._display.flush()

    # ------------------------------------------------------------------ keyboard

    def key(self, keysym: int, down: bool) -> None:
        self._refresh_mapping()
        if not down:
            keycode = self._held_keys.pop(keysym, None)
            if keycode is not None:
                xtest.fake_input(self._display, X.KeyRelease, keycode)
                self._display.flush()
            return
        if keysym in self._held_keys:  # auto-repeat from the console: press again
            xtest.fake_input(self._display, X.KeyPress, self._held_keys[keysym])
            self._display.flush()
            return
        keycode, shift = self._keycode_for(keysym)
        shift_held = any(k in _SHIFT for k in self._held_keys)
        toggle = shift is not None and shift != shift_held
        shift_code = self._display.keysym_to_keycode(XK.XK_Shift_L) if toggle else 0
        if toggle and shift_code:
            held_shift_codes = [c for k, c in self._held_keys.items() if k in _SHIFT]
            if shift:
                xtest.fake_input(self._display, X.KeyPress, shift_code)
            else:
                for code in held_shift_codes:
                    xtest.fake_input(self._display, X.KeyRelease, code)
        xtest.fake_input(self._display, X.KeyPress, keycode)
        if toggle and shift_code:
            if shift:
                xtest.fake_input(self._display, X.KeyRelease, shift_code)
            else:
                for code in held_shift_codes:
                    xtest.fake_input(self._display, X.KeyPress, code)
        self._held_keys[keysym] = keycode
        self._display.flush()

    def type_text(self, text: str) -> None:
        for char in text:
            keysym = char_to_keysym(char)
            self.key(keysym, True)
            self.key(keysym, False)

    def release_all(self) -> None:
        for keycode in self._held_keys.values():
            xtest.fake_input(self._display, X.KeyRelease, keycode)
        for button in self._held_buttons:
            xtest.fake_input(self._display, X.ButtonRelease, button)
        self._held_keys.clear()
        self._held_buttons.clear()
        self._display.flush()

    def restore_keymap(self) -> None:
        """Give the spare keycodes back their empty mapping."""
        in_use = set(self._held_keys.values())
        for keysym, keycode in list(self._scratch.items()):
            if keycode in in_use:
                continue
            self._display.change_keyboard_mapping(keycode, [(X.NoSymbol,) * self._per_code])
            del self._scratch[keysym]
        self._display.sync()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.release_all()
            self.restore_keymap()
        self._display.close()

    # ------------------------------------------------------------------ keymap

    def _refresh_mapping(self) -> None:
        """Another client changed the keymap (layout switch): python-xlib caches it, so reload."""
        while self._display.pending_events():
            ev = self._display.next_event()
            if ev.type == X.MappingNotify and ev.request == X.MappingKeyboard:
                self._display.refresh_keyboard_mapping(ev)

    def _keycode_for(self, keysym: int) -> tuple[int, bool | None]:
        """A keycode that types ``keysym`` and whether Shift must be down (None: either way)."""
        if keysym in self._scratch:
            self._scratch[keysym] = self._scratch.pop(keysym)  # most recently used last
            return self._scratch[keysym], None
        for keycode, index in self._display.keysym_to_keycodes(keysym):
            if index in (0, 1) and keycode not in self._scratch.values():
                plain = self._display.keycode_to_keysym(keycode, 0)
                shifted = self._display.keycode_to_keysym(keycode, 1)
                if plain == shifted or not shifted:
                    return keycode, None  # Shift does not change what this key types (Return, F1, Control...)
                return keycode, index == 1
        return self._bind_scratch(keysym), None

    def _bind_scratch(self, keysym: int) -> int:
        if not self._spare:
            raise InputError(f"no spare keycode to type keysym 0x{keysym:x}")
        in_use = set(self._held_keys.values())
        free = [c for c in self._spare if c not in self._scratch.values()]
        if free:
            keycode = free[0]
        else:  # reuse the least recently used binding that is not held down
            victim = next((k for k, c in self._scratch.items() if c not in in_use), None)
            if victim is None:
                raise InputError("every spare keycode is held down")
            keycode = self._scratch.pop(victim)
        self._display.change_keyboard_mapping(keycode, [(keysym,) * self._per_code])
        self._display.sync()
        self._scratch[keysym] = keycode
        return keycode


class X11Clipboard:
    """The CLIPBOARD selection as text. A thread serves our selection and reports other owners' changes."""

    def __init__(self, display_name: str | None = None) -> None:
        self._display_name = display_name
        self._owner = _open(display_name)  # used only by the serving thread after start
        self._reader = _open(display_name)  # used only by the caller's thread
        self._atoms = {
            name: self._owner.intern_atom(name)
            for name in ("CLIPBOARD", "TARGETS", "UTF8_STRING", "TEXT", "STEUN_CLIPBOARD", "INCR")
        }
        self._window = self._owner.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._read_window = self._reader.screen().root.create_window(
            0, 0, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask
        )
        self._xfixes = self._owner.has_extension("XFIXES")
        self._owner_notify = -1  # python-xlib builds its own event classes: match on the event code
        extension = self._owner.query_extension("XFIXES") if self._xfixes else None
        if extension is not None:
            self._owner_notify = extension.first_event + xfixes.XFixesSelectionNotify
            self._owner.xfixes_query_version()
            self._owner.xfixes_select_selection_input(
                self._window, self._atoms["CLIPBOARD"], xfixes.XFixesSetSelectionOwnerNotifyMask
            )
        self._owner.flush()
        self._lock = threading.Lock()
        self._text: bytes | None = None
        self._on_change: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="steun-clipboard-x11", daemon=True)
        self._thread.start()

    def watch(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def set_text(self, text: str) -> None:
        data = text.encode()[:MAX_CLIPBOARD]
        with self._lock:
            self._text = data
            # Xlib calls on the owner connection happen under the lock: the serving thread uses it too.
            self._window.set_selection_owner(self._atoms["CLIPBOARD"], X.CurrentTime)
            self._owner.flush()

    def get_text(self) -> str | None:
        with self._lock:
            if self._text is not None:
                return self._text.decode("utf-8", "replace")
        d, clipboard, prop = self._reader, self._atoms["CLIPBOARD"], self._atoms["STEUN_CLIPBOARD"]
        for target in (self._atoms["UTF8_STRING"], Xatom.STRING):
            self._read_window.convert_selection(clipboard, target, prop, X.CurrentTime)
            d.flush()
            notify = self._next_event(lambda e: e.type == X.SelectionNotify, CLIPBOARD_TIMEOUT)
            if notify is None:
                return None
            if notify.property == X.NONE:
                continue
            data = self._read_property(prop)
            if data is not None:
                encoding = "utf-8" if target != Xatom.STRING else "latin-1"
                return data.decode(encoding, "replace")
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self._owner.close()
        with contextlib.suppress(Exception):
            self._reader.close()

    # ------------------------------------------------------------------ reading (caller's thread)

    def _next_event(self, match: Callable[[Any], bool], timeout: float) -> Any | None:
        d = self._reader
        deadline = time.monotonic() + timeout
        while True:
            while d.pending_events():
                ev = d.next_event()
                if match(ev):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([d.fileno()], [], [], left)

    def _read_property(self, prop: int) -> bytes | None:
        reply = self._read_window.get_full_property(prop, X.AnyPropertyType, sizehint=MAX_CLIPBOARD)
        if reply is None:
            return None
        if reply.property_type == self._atoms["INCR"]:
            return self._read_incr(prop)
        self._read_window.delete_property(prop)
        return bytes(reply.value)[:MAX_CLIPBOARD] if reply.format == 8 else None

    def _read_incr(self, prop: int) -> bytes | None:
        """ICCCM INCR: the owner sends chunks, one per property deletion, ending with an empty one."""
        chunks: list[bytes] = []
        size = 0
        self._read_window.delete_property(prop)
        self._reader.flush()
        while True:
            ev = self._next_event(
                lambda e: e.type == X.PropertyNotify and e.state == X.PropertyNewValue and e.atom == prop,
                CLIPBOARD_TIMEOUT,
            )
            if ev is None:
                return None
            reply = self._read_window.get_full_property(prop, X.AnyPropertyType, sizehint=MAX_CLIPBOARD)
            self._read_window.delete_property(prop)
            self._reader.flush()
            chunk = bytes(reply.value) if reply is not None else b""
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_CLIPBOARD:
                return None
            chunks.append(chunk)

    # ------------------------------------------------------------------ serving (own thread)

    def _serve(self) -> None:
        d = self._owner
        while not self._stop.is_set():
            with self._lock:
                events = []
                while d.pending_events():
                    events.append(d.next_event())
                for ev in events:
                    self._serve_event(ev)
                d.flush()
            select.select([d.fileno()], [], [], 0.2)

    def _serve_event(self, ev: Any) -> None:
        clipboard = self._atoms["CLIPBOARD"]
        if ev.type == X.SelectionClear and ev.atom == clipboard:
            self._text = None
        elif ev.type == X.SelectionRequest:
            self._answer(ev)
        elif (
            ev.type == self._owner_notify
            and getattr(ev, "sub_code", None) == xfixes.XFixesSetSelectionOwnerNotify
            and getattr(ev.owner, "id", ev.owner) != self._window.id
            and self._on_change is not None
        ):
            self._text = None
            self._on_change()

    def _answer(self, req: Any) -> None:
        prop = req.property if req.property != X.NONE else req.target
        text = self._text
        targets = [self._atoms["TARGETS"], self._atoms["UTF8_STRING"], self._atoms["TEXT"], Xatom.STRING]
        ok = text is not None and req.selection == self._atoms["CLIPBOARD"]
        try:
            if ok and req.target == self._atoms["TARGETS"]:
                req.requestor.change_property(prop, Xatom.ATOM, 32, targets)
            elif ok and text is not None and req.target in targets[1:]:
                chunk = 65536  # appended in pieces: one request never exceeds the core size limit
                kind = Xatom.STRING if req.target == Xatom.STRING else self._atoms["UTF8_STRING"]
                payload = text if kind != Xatom.STRING else text.decode().encode("latin-1", "replace")
                req.requestor.change_property(prop, kind, 8, payload[:chunk])
                for i in range(chunk, len(payload), chunk):
                    req.requestor.change_property(prop, kind, 8, payload[i : i + chunk], X.PropModeAppend)
            else:
                prop = X.NONE
        except XError:
            prop = X.NONE
        notify = xevent.SelectionNotify(
            time=req.time, requestor=req.requestor, selection=req.selection, target=req.target, property=prop
        )
        with contextlib.suppress(XError):
            req.requestor.send_event(notify)
