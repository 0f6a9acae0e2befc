"""The chat window: transcript, canned phrases, a text entry, typing and read marks. Tk-thread code only.

Paths (``.chat.widget``): ``transcript`` (read-only Text), ``scroll``, ``typing``, ``phrases`` (a frame with
one button ``phrase_<id>`` per canned phrase, e.g. ``.chat.phrases.phrase_100``), ``entry`` (Text),
``send``, ``hint``, ``status``. WM class ``SteunChat``.

Every message is inserted as one plain-text argument (never built into a Tcl command or a tag list), so a
message cannot add tags, marks or markup. The widget keeps at most as many messages as the session's
transcript (:data:`~steun_agent.chat.service.MAX_TRANSCRIPT_MESSAGES`, ``MAX_TRANSCRIPT_BYTES``); the oldest
leave the screen first. Closing the window only hides it: the session's Stop is in the indicator.
"""

from __future__ import annotations

import collections
import time
import tkinter as tk
from collections.abc import Callable, Mapping, Sequence
from tkinter import ttk
from typing import Protocol

from steun_protocol.chat import Phrase, Sender

from ..chat.service import MAX_TRANSCRIPT_BYTES, MAX_TRANSCRIPT_MESSAGES, ChatEvent, ChatLine
from .base import chat_text
from .i18n import Texts
from .tkwindows import _font, _toplevel

#: The technician's "is typing…" goes away by itself after this long without news (a console that vanished).
TYPING_SHOWN_FOR = 15.0
#: The user counts as no longer typing after this long without a keystroke.
TYPING_IDLE = 4.0
PHRASE_COLUMNS = 3
#: Phrase buttons wrap their text at this width (pixels), so a long phrase does not widen the window.
PHRASE_WRAP = 150
STATUS_WRAP = 520
TECHNICIAN_BLUE = "#0b57d0"
USER_GREEN = "#146c2e"
NOTICE_GREY = "#5f6368"


class ChatActions(Protocol):
    """What the window asks of the session (``tkui.TkChatWindow``); called in the Tk thread, never waits."""

    def say(self, text: str) -> None: ...

    def say_phrase(self, phrase: Phrase) -> None: ...

    def typing(self, active: bool) -> None: ...

    def read(self) -> None: ...


class ChatWindowTk:
    """The window. ``owner`` tells the loop's handle which window is its own (a newer session replaces it)."""

    NAME = "chat"

    def __init__(
        self,
        root: tk.Tk,
        texts: Texts,
        technician: str,
        lines: Sequence[ChatLine],
        phrases: Mapping[Phrase, str],
        actions: ChatActions,
        unread_changed: Callable[[int], None],
        *,
        owner: int = 0,
        max_messages: int = MAX_TRANSCRIPT_MESSAGES,
        max_chars: int = MAX_TRANSCRIPT_BYTES,
    ) -> None:
        self.owner = owner
        self._texts = t = texts
        self._technician = technician
        self._actions = actions
        self._unread_changed = unread_changed
        self._max_messages = max_messages
        self._max_chars = max_chars
        #: (text lines, characters) of each entry on screen, oldest first.
        self._entries: collections.deque[tuple[int, int]] = collections.deque()
        self._chars = 0
        self.unread = 0
        self.closed = False
        self._last_user_id = 0
        self._typing_sent = False
        self._typing_idle: str | None = None
        self._typing_hide: str | None = None
        self._fonts = {
            "body": _font("TkDefaultFont", size=10),
            "bold": _font("TkDefaultFont", size=10, weight="bold"),
            "small": _font("TkDefaultFont", size=9),
            "italic": _font("TkDefaultFont", slant="italic", size=9),
        }
        top = self.top = _toplevel(root, self.NAME, "SteunChat", t("chat.title", technician=technician))
        top.resizable(True, True)
        top.configure(padx=10, pady=8)
        top.rowconfigure(0, weight=1)
        top.columnconfigure(1, weight=0)

        self.transcript = tk.Text(
            top,
            name="transcript",
            wrap="word",
            height=16,
            width=56,
            font=self._fonts["body"],
            state="disabled",
            takefocus=False,
        )
        self.transcript.grid(row=0, column=0, columnspan=2, sticky="nsew")
        scroll = ttk.Scrollbar(top, name="scroll", orient="vertical", command=self.transcript.yview)
        scroll.grid(row=0, column=2, sticky="ns")
        self.transcript.configure(yscrollcommand=scroll.set)
        self.transcript.tag_configure("technician", font=self._fonts["bold"], foreground=TECHNICIAN_BLUE)
        self.transcript.tag_configure("user", font=self._fonts["bold"], foreground=USER_GREEN)
        self.transcript.tag_configure("time", font=self._fonts["small"], foreground=NOTICE_GREY)
        self.transcript.tag_configure("notice", font=self._fonts["italic"], foreground=NOTICE_GREY)

        self.typing_label = ttk.Label(top, name="typing", text="", font=self._fonts["italic"])
        self.typing_label.grid(row=1, column=0, columnspan=3, sticky="w", pady=(2, 2))

        ttk.Style(top).configure("SteunPhrase.TButton", wraplength=PHRASE_WRAP, justify="center")
        box = ttk.Frame(top, name="phrases")
        box.grid(row=2, column=0, columnspan=3, sticky="ew", pady=(2, 4))
        self.phrase_buttons: list[ttk.Button] = []
        for index, (phrase, text) in enumerate(phrases.items()):
            command = self._phrase_command(phrase)
            button = ttk.Button(
                box, name=f"phrase_{int(phrase)}", text=text, command=command, style="SteunPhrase.TButton"
            )
            row, column = divmod(index, PHRASE_COLUMNS)
            button.grid(row=row, column=column, sticky="nsew", padx=1, pady=1)
            self.phrase_buttons.append(button)
        for column in range(PHRASE_COLUMNS):
            box.columnconfigure(column, weight=1)

        self.entry = tk.Text(
            top, name="entry", wrap="word", height=3, width=40, undo=True, font=self._fonts["body"]
        )
        self.entry.grid(row=3, column=0, sticky="nsew")
        self.send_button = ttk.Button(top, name="send", text=t("chat.send"), command=self._send)
        self.send_button.grid(row=3, column=1, columnspan=2, sticky="nsew", padx=(6, 0))
        self.hint = ttk.Label(
            top, name="hint", text=t("chat.hint"), font=self._fonts["small"], wraplength=STATUS_WRAP
        )
        self.hint.grid(row=4, column=0, columnspan=3, sticky="w")
        self.status = ttk.Label(
            top, name="status", text="", font=self._fonts["small"], wraplength=STATUS_WRAP
        )
        self.status.grid(row=5, column=0, columnspan=3, sticky="w")

        self.entry.bind("<Return>", self._on_return)
        self.entry.bind("<KP_Enter>", self._on_return)
        self.entry.bind("<Shift-Return>", self._on_shift_return)
        self.entry.bind("<KeyRelease>", self._on_key)
        top.bind("<FocusIn>", lambda _e: self._maybe_seen())
        top.bind("<Map>", lambda _e: self._maybe_seen())
        # Hiding is all closing does: the session goes on, and the indicator's Chat button brings it back.
        top.protocol("WM_DELETE_WINDOW", self.hide)
        top.bind("<Escape>", lambda _e: self.hide())

        for line in lines:
            self._insert_line(line)
            if line.sender is Sender.TECHNICIAN:
                self.unread += 1
            else:  # the user answered: what came before it was read
                self.unread = 0
                self._last_user_id = max(self._last_user_id, line.id)
        self._place()
        self.show()

    # ----------------------------------------------------------------------------------------- showing

    def _place(self) -> None:
        top = self.top
        top.update_idletasks()
        x = max(0, top.winfo_screenwidth() - top.winfo_reqwidth() - 24)
        top.geometry(f"+{x}+140")

    def show(self) -> None:
        """Back on screen and in front, with the entry focused (the user asked for it)."""
        if not self.top.winfo_exists():
            return
        self.top.deiconify()
        self.top.lift()
        self.top.focus_force()
        self.entry.focus_set()
        self._maybe_seen()

    def hide(self) -> None:
        self._stop_typing()
        self.top.withdraw()

    def _seen(self) -> bool:
        """The user can read the newest lines: the window is on screen and has the keyboard focus."""
        if not self.top.winfo_viewable():
            return False
        try:
            focused = self.top.focus_get()
        except (KeyError, tk.TclError):
            return False
        return focused is not None and focused.winfo_toplevel() is self.top

    def _maybe_seen(self) -> None:
        if self.unread and self._seen():
            self.unread = 0
            self._unread_changed(0)
            self._actions.read()

    # ----------------------------------------------------------------------------------------- transcript

    def on_event(self, event: ChatEvent) -> None:
        if event.kind == "message" and event.line is not None:
            self.add_line(event.line)
        elif event.kind == "typing" and event.sender is Sender.TECHNICIAN:
            self._show_typing(event.active)
        elif event.kind == "read" and event.sender is Sender.TECHNICIAN:
            if self._last_user_id and event.up_to >= self._last_user_id:
                self.status.configure(text=self._texts("chat.read", technician=self._technician))
        elif event.kind == "closed":
            self.set_closed()

    def add_line(self, line: ChatLine) -> None:
        self._insert_line(line)
        if line.sender is Sender.TECHNICIAN:
            self._show_typing(False)
            if self._seen():
                self._actions.read()
            else:
                self.unread += 1
                self._unread_changed(self.unread)
        else:
            self._last_user_id = max(self._last_user_id, line.id)
            self.status.configure(text="")

    def add_notice(self, text: str) -> None:
        self._append([(text + "\n\n", ("notice",))])

    def _insert_line(self, line: ChatLine) -> None:
        technician = line.sender is Sender.TECHNICIAN
        who = self._technician if technician else self._texts("chat.you")
        when = time.strftime("%H:%M", time.localtime(line.received))
        body = chat_text(line.shown or line.text) or "…"
        self._append(
            [
                (who, ("technician" if technician else "user",)),
                (f"  {when}\n", ("time",)),
                (body + "\n\n", ()),
            ]
        )

    def _append(self, parts: list[tuple[str, tuple[str, ...]]]) -> None:
        text = self.transcript
        at_end = text.yview()[1] >= 0.999
        text.configure(state="normal")
        try:
            for chars, tags in parts:
                # One plain string per call: Tk takes it as characters, whatever they are.
                text.insert("end", chars, tags)
            joined = "".join(chars for chars, _tags in parts)
            self._entries.append((joined.count("\n"), len(joined)))
            self._chars += len(joined)
            while len(self._entries) > self._max_messages or (
                self._chars > self._max_chars and len(self._entries) > 1
            ):
                rows, size = self._entries.popleft()
                self._chars -= size
                text.delete("1.0", f"{rows + 1}.0")
        finally:
            text.configure(state="disabled")
        if at_end:
            text.see("end")

    def transcript_text(self) -> str:
        """What the transcript shows, as text (for tests and accessibility tools)."""
        return str(self.transcript.get("1.0", "end-1c"))

    # ----------------------------------------------------------------------------------------- typing

    def _show_typing(self, active: bool) -> None:
        if self._typing_hide is not None:
            self.top.after_cancel(self._typing_hide)
            self._typing_hide = None
        if active and not self.closed:
            self.typing_label.configure(text=self._texts("chat.typing", technician=self._technician))
            self._typing_hide = self.top.after(int(TYPING_SHOWN_FOR * 1000), lambda: self._show_typing(False))
        else:
            self.typing_label.configure(text="")

    def _on_key(self, _event: object) -> None:
        if self.closed:
            return
        has_text = bool(self.entry.get("1.0", "end-1c").strip())
        if self._typing_idle is not None:
            self.top.after_cancel(self._typing_idle)
            self._typing_idle = None
        if not has_text:
            self._stop_typing()
            return
        if not self._typing_sent:
            self._typing_sent = True
            self._actions.typing(True)
        self._typing_idle = self.top.after(int(TYPING_IDLE * 1000), self._stop_typing)

    def _stop_typing(self) -> None:
        if self._typing_idle is not None:
            self.top.after_cancel(self._typing_idle)
            self._typing_idle = None
        if self._typing_sent:
            self._typing_sent = False
            self._actions.typing(False)

    # ----------------------------------------------------------------------------------------- sending

    def _on_return(self, _event: object) -> str:
        self._send()
        return "break"  # Enter sends; it does not also put a newline in the entry

    def _on_shift_return(self, _event: object) -> str:
        if not self.closed:
            self.entry.insert("insert", "\n")
        return "break"

    def _send(self) -> None:
        if self.closed:
            return
        text = str(self.entry.get("1.0", "end-1c"))
        if not text.strip():
            return
        self.entry.delete("1.0", "end")
        self._stop_typing()
        self._actions.say(text)

    def _phrase_command(self, phrase: Phrase) -> Callable[[], None]:
        def say() -> None:
            if not self.closed:
                self._actions.say_phrase(phrase)

        return say

    # ----------------------------------------------------------------------------------------- the end

    def set_closed(self) -> None:
        """The session is over: say so, keep the transcript readable, take away every way to send."""
        if self.closed:
            return
        self._stop_typing()
        self._show_typing(False)
        self.closed = True
        notice = self._texts("chat.closed")
        self.add_notice(notice)
        self.status.configure(text=notice)
        self.entry.configure(state="disabled", background=str(self.top.cget("background")))
        self.send_button.state(["disabled"])
        for button in self.phrase_buttons:
            button.state(["disabled"])

    def destroy(self) -> None:
        self.closed = True
        for timer in (self._typing_idle, self._typing_hide):
            if timer is not None:
                self.top.after_cancel(timer)
        self._typing_idle = self._typing_hide = None
        if self.top.winfo_exists():
            self.top.destroy()
