"""The Tk windows: support code, consent prompt, session indicator, notice. Tk-thread code only.

Every widget has a stable name, so tests and accessibility tools find it by path (``.consent.accept``), and
every window has a stable WM class (``SteunConsent``) beside its translated title ("Steun — consent").

Paths (``.window.widget``):

- support code ``.support_code``: ``heading``, ``instructions``, ``code`` (entry), ``error``, ``cancel``,
  ``connect``;
- consent ``.consent``: ``heading``, ``who``, ``technician_id``, ``signed``, ``asks``, ``cap_<capability>``,
  ``already``, ``reason``, ``forbidden``, ``sas_label``, ``sas``, ``sas_check``, ``countdown``, ``deny``,
  ``accept``;
- indicator ``.indicator``: ``connected``, ``capabilities``, ``elapsed``, ``chat`` (only while a chat is
  open), ``stop``;
- notice ``.notice``: ``message``, ``ok``;
- the chat window ``.chat`` lives in ``tkchat.py``.
"""

from __future__ import annotations

import math
import time
import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from tkinter import ttk
from typing import Any

from ..consent import Answer, ConsentPrompt
from .base import (
    NAME_LIMIT,
    REASON_LIMIT,
    SUPPORT_CODE_DIGITS,
    IndicatorInfo,
    display_text,
    format_elapsed,
    group_digits,
    parse_support_code,
)
from .i18n import Texts

WRAP = 440
STOP_RED = "#b3261e"


def _toplevel(root: tk.Tk, name: str, class_: str, title: str) -> tk.Toplevel:
    old = root.children.get(name)
    if old is not None:
        old.destroy()
    top = tk.Toplevel(root, name=name, class_=class_)
    top.title(title)
    top.resizable(False, False)
    top.configure(background=ttk.Style(root).lookup("TFrame", "background") or "#ececec", padx=18, pady=14)
    top.columnconfigure(0, weight=1)
    top.columnconfigure(1, weight=1)
    return top


def _label(top: tk.Toplevel, name: str, text: str, row: int, **options: Any) -> ttk.Label:
    label = ttk.Label(top, name=name, text=text, wraplength=WRAP, justify="left", **options)
    label.grid(row=row, column=0, columnspan=2, sticky="w", pady=(0, 4))
    return label


def _font(base: str, **changes: Any) -> tkfont.Font:
    font = tkfont.nametofont(base).copy()
    font.configure(**changes)
    return font


def _place_center(top: tk.Toplevel) -> None:
    top.update_idletasks()
    width, height = top.winfo_reqwidth(), top.winfo_reqheight()
    x = max(0, (top.winfo_screenwidth() - width) // 2)
    y = max(0, (top.winfo_screenheight() - height) // 3)
    top.geometry(f"+{x}+{y}")


def _raise(top: tk.Toplevel) -> None:
    top.attributes("-topmost", True)
    top.deiconify()
    top.lift()
    top.focus_force()


class ConsentWindow:
    """The question: who, what, the SAS, a countdown. Deny is the default and the answer to anything else."""

    NAME = "consent"

    def __init__(
        self,
        root: tk.Tk,
        prompt: ConsentPrompt,
        texts: Texts,
        answer: Callable[[Answer], None],
        *,
        accept_delay: float = 1.0,
    ) -> None:
        self._answer_cb: Callable[[Answer], None] | None = answer
        self._deadline = time.monotonic() + prompt.timeout
        self._texts = texts
        self._fonts = {
            "heading": _font("TkDefaultFont", size=13, weight="bold"),
            "sas": _font("TkFixedFont", size=30, weight="bold"),
            "small": _font("TkDefaultFont", size=9),
        }
        t = texts
        org = display_text(prompt.org_name, NAME_LIMIT)
        technician = display_text(prompt.technician.name, NAME_LIMIT)
        top = self.top = _toplevel(root, self.NAME, "SteunConsent", t("consent.title"))
        row = 0
        _label(top, "heading", t("consent.heading"), row, font=self._fonts["heading"])
        row += 1
        _label(top, "who", t("consent.who", technician=technician, org=org), row)
        row += 1
        tech_id = display_text(prompt.technician.user_id, NAME_LIMIT)
        _label(top, "technician_id", t("consent.technician_id", id=tech_id), row, font=self._fonts["small"])
        row += 1
        _label(top, "signed", t("consent.signed", org=org), row, font=self._fonts["small"])
        row += 1
        _label(top, "asks", t("consent.asks" if prompt.first else "consent.asks_more"), row)
        for capability in prompt.capabilities:
            row += 1
            _label(top, f"cap_{capability.value}", "   •  " + t.capability(capability), row)
        if prompt.already_granted and not prompt.first:
            row += 1
            _label(top, "already", t("consent.already", list=t.short(prompt.already_granted)), row)
        if prompt.reason.strip():
            row += 1
            _label(top, "reason", t("consent.reason", reason=display_text(prompt.reason, REASON_LIMIT)), row)
        if prompt.forbidden:
            row += 1
            _label(top, "forbidden", t("consent.forbidden", list=t.short(prompt.forbidden)), row)
        row += 1
        ttk.Separator(top, name="separator").grid(row=row, column=0, columnspan=2, sticky="ew", pady=8)
        row += 1
        _label(top, "sas_label", t("consent.sas_label"), row)
        row += 1
        sas = ttk.Label(top, name="sas", text=group_digits(prompt.sas), font=self._fonts["sas"])
        sas.grid(row=row, column=0, columnspan=2, pady=(0, 4))
        row += 1
        _label(top, "sas_check", t("consent.sas_check"), row)
        row += 1
        self.countdown = _label(top, "countdown", "", row, font=self._fonts["small"])
        row += 1
        self.deny = ttk.Button(top, name="deny", text=t("consent.deny"), default="active")
        self.deny.configure(command=lambda: self.answer(Answer.DENY))
        self.deny.grid(row=row, column=0, sticky="ew", padx=(0, 6), pady=(10, 0))
        self.accept = ttk.Button(top, name="accept", text=t("consent.accept"), state="disabled")
        self.accept.configure(command=lambda: self.answer(Answer.ACCEPT))
        self.accept.grid(row=row, column=1, sticky="ew", padx=(6, 0), pady=(10, 0))

        top.protocol("WM_DELETE_WINDOW", lambda: self.answer(Answer.DENY))
        top.bind("<Escape>", lambda _e: self.answer(Answer.DENY))
        top.bind("<Return>", self._on_return)
        top.bind("<KP_Enter>", self._on_return)
        _place_center(top)
        _raise(top)
        self.deny.focus_set()
        # A click or keystroke meant for another window must not land on Accept the moment this one appears.
        top.after(int(accept_delay * 1000), self._enable_accept)
        self._tick()

    def _enable_accept(self) -> None:
        if self._answer_cb is not None:
            self.accept.state(["!disabled"])

    def _on_return(self, _event: object) -> None:
        focused = self.top.focus_get()
        if focused is self.accept and not self.accept.instate(["disabled"]):
            self.answer(Answer.ACCEPT)
        else:
            self.answer(Answer.DENY)

    def _tick(self) -> None:
        if self._answer_cb is None:
            return
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.answer(Answer.TIMEOUT)
            return
        self.countdown.configure(text=self._texts("consent.countdown", seconds=math.ceil(remaining)))
        self.top.after(min(250, max(10, int(remaining * 1000))), self._tick)

    def answer(self, answer: Answer) -> None:
        """Report once, then go away."""
        callback, self._answer_cb = self._answer_cb, None
        if callback is not None:
            callback(answer)
        self.destroy()

    def destroy(self) -> None:
        self._answer_cb = None
        if self.top.winfo_exists():
            self.top.destroy()


class SupportCodeWindow:
    """Nine digits, shown grouped as "123 456 789"; Connect only when all nine are there."""

    NAME = "support_code"

    def __init__(
        self, root: tk.Tk, texts: Texts, done: Callable[[str | None], None], *, error: str | None = None
    ) -> None:
        self._done: Callable[[str | None], None] | None = done
        self._formatting = False
        t = texts
        self._fonts = {
            "heading": _font("TkDefaultFont", size=13, weight="bold"),
            "code": _font("TkFixedFont", size=24, weight="bold"),
        }
        top = self.top = _toplevel(root, self.NAME, "SteunSupportCode", t("code.title"))
        _label(top, "heading", t("code.heading"), 0, font=self._fonts["heading"])
        _label(top, "instructions", t("code.instructions"), 1)
        self.var = tk.StringVar(top)
        self.entry = ttk.Entry(
            top, name="code", textvariable=self.var, font=self._fonts["code"], width=12, justify="center"
        )
        self.entry.grid(row=2, column=0, columnspan=2, pady=8)
        self.error = _label(top, "error", display_text(error, REASON_LIMIT) if error else "", 3)
        self.error.configure(foreground=STOP_RED)
        self.cancel = ttk.Button(top, name="cancel", text=t("code.cancel"), command=lambda: self.finish(None))
        self.cancel.grid(row=4, column=0, sticky="ew", padx=(0, 6), pady=(8, 0))
        self.connect = ttk.Button(
            top, name="connect", text=t("code.connect"), default="active", command=self._connect
        )
        self.connect.state(["disabled"])
        self.connect.grid(row=4, column=1, sticky="ew", padx=(6, 0), pady=(8, 0))
        self._invalid = t("code.invalid")
        self.var.trace_add("write", self._changed)
        top.protocol("WM_DELETE_WINDOW", lambda: self.finish(None))
        top.bind("<Escape>", lambda _e: self.finish(None))
        top.bind("<Return>", lambda _e: self._connect())
        top.bind("<KP_Enter>", lambda _e: self._connect())
        _place_center(top)
        _raise(top)
        self.entry.focus_set()

    def _changed(self, *_args: object) -> None:
        if self._formatting:
            return
        digits = "".join(ch for ch in self.var.get() if ch.isascii() and ch.isdigit())[:SUPPORT_CODE_DIGITS]
        formatted = group_digits(digits)
        if formatted != self.var.get():
            self._formatting = True
            try:
                self.var.set(formatted)
            finally:
                self._formatting = False
            # The entry moves its cursor after this trace returns; put it at the end once it has.
            self.entry.after_idle(lambda: self.entry.icursor("end") if self.entry.winfo_exists() else None)
        complete = len(digits) == SUPPORT_CODE_DIGITS
        self.connect.state(["!disabled"] if complete else ["disabled"])
        if complete:
            self.error.configure(text="")

    def _connect(self) -> None:
        code = parse_support_code(self.var.get())
        if code is None:
            self.error.configure(text=self._invalid)
            return
        self.finish(code)

    def finish(self, code: str | None) -> None:
        callback, self._done = self._done, None
        if callback is not None:
            callback(code)
        self.destroy()

    def destroy(self) -> None:
        self._done = None
        if self.top.winfo_exists():
            self.top.destroy()


class IndicatorWindow:
    """Small, always on top: who is connected, what they may do, for how long, and Stop."""

    NAME = "indicator"

    def __init__(
        self,
        root: tk.Tk,
        info: IndicatorInfo,
        texts: Texts,
        stop: Callable[[], None],
    ) -> None:
        self._stop: Callable[[], None] | None = stop
        self._texts = texts
        self._started = info.started
        t = texts
        self._fonts = {"bold": _font("TkDefaultFont", weight="bold"), "small": _font("TkDefaultFont", size=9)}
        top = self.top = _toplevel(root, self.NAME, "SteunIndicator", t("indicator.title"))
        top.configure(padx=12, pady=8)
        who = t(
            "indicator.connected",
            technician=display_text(info.technician.name, NAME_LIMIT),
            org=display_text(info.org_name, NAME_LIMIT),
        )
        _label(top, "connected", who, 0, font=self._fonts["bold"]).configure(wraplength=300)
        self.capabilities = _label(top, "capabilities", "", 1, font=self._fonts["small"])
        self.capabilities.configure(wraplength=300)
        self.elapsed = _label(top, "elapsed", "", 2, font=self._fonts["small"])
        self.stop_button = tk.Button(
            top,
            name="stop",
            text=t("indicator.stop"),
            command=self.press_stop,
            background=STOP_RED,
            foreground="white",
            activebackground="#8c1d18",
            activeforeground="white",
            relief="flat",
            padx=14,
            pady=4,
        )
        self.stop_button.grid(row=0, column=3, rowspan=3, sticky="nse", padx=(8, 0))
        # Reopens the chat window; shown only while the session has a chat (``show_chat_button``).
        self.chat_button = ttk.Button(top, name="chat", text=t("indicator.chat"))
        self._chat_open: Callable[[], None] | None = None
        self._chat_shown = False
        self.chat_button.configure(command=self._open_chat)
        self.update(info.capabilities)
        # Closing the indicator must not leave a session running out of sight: it is Stop.
        top.protocol("WM_DELETE_WINDOW", self.press_stop)
        top.update_idletasks()
        x = max(0, top.winfo_screenwidth() - top.winfo_reqwidth() - 24)
        top.geometry(f"+{x}+24")
        top.attributes("-topmost", True)
        top.deiconify()
        self._tick()

    def update(self, capabilities: tuple[Any, ...]) -> None:
        self.capabilities.configure(text=self._texts("indicator.can", list=self._texts.short(capabilities)))

    def show_chat_button(self, open_chat: Callable[[], None], unread: int = 0) -> None:
        self._chat_open = open_chat
        self.set_chat_unread(unread)
        if not self._chat_shown:
            self._chat_shown = True
            self.chat_button.grid(row=0, column=2, rowspan=3, sticky="ns", padx=(12, 0))
            self._keep_on_screen()

    def hide_chat_button(self) -> None:
        self._chat_open = None
        self._chat_shown = False
        self.chat_button.grid_remove()

    def set_chat_unread(self, count: int) -> None:
        """ "Chat" or "Chat (2 new)": technician messages the user has not had in front of them yet."""
        text = self._texts("indicator.chat_unread", count=count) if count else self._texts("indicator.chat")
        self.chat_button.configure(text=text)

    def _open_chat(self) -> None:
        if self._chat_open is not None:
            self._chat_open()

    def _keep_on_screen(self) -> None:
        top = self.top
        top.update_idletasks()
        limit = top.winfo_screenwidth() - top.winfo_reqwidth() - 24
        if top.winfo_x() > limit:
            top.geometry(f"+{max(0, limit)}+{top.winfo_y()}")

    def _tick(self) -> None:
        if self._stop is None or not self.top.winfo_exists():
            return
        elapsed = format_elapsed(time.monotonic() - self._started)
        self.elapsed.configure(text=self._texts("indicator.elapsed", elapsed=elapsed))
        self.top.after(1000, self._tick)

    def press_stop(self) -> None:
        callback, self._stop = self._stop, None
        if callback is not None:
            callback()
        self.destroy()

    def destroy(self) -> None:
        self._stop = None
        if self.top.winfo_exists():
            self.top.destroy()


class NoticeWindow:
    """A message and OK (e.g. why sessions are refused)."""

    NAME = "notice"

    def __init__(self, root: tk.Tk, title: str, message: str, done: Callable[[], None]) -> None:
        self._done: Callable[[], None] | None = done
        top = self.top = _toplevel(root, self.NAME, "SteunNotice", title)
        _label(top, "message", message, 0)
        ok = ttk.Button(top, name="ok", text="OK", default="active", command=self.finish)
        ok.grid(row=1, column=1, sticky="e", pady=(10, 0))
        top.protocol("WM_DELETE_WINDOW", self.finish)
        top.bind("<Return>", lambda _e: self.finish())
        top.bind("<Escape>", lambda _e: self.finish())
        _place_center(top)
        _raise(top)
        ok.focus_set()

    def finish(self) -> None:
        callback, self._done = self._done, None
        if callback is not None:
            callback()
        self.destroy()

    def destroy(self) -> None:
        self._done = None
        if self.top.winfo_exists():
            self.top.destroy()
