// The session's Chat tab: the conversation with the user, canned phrases, typing and read marks.
//
// Everything the user writes is shown with textContent only (never markup), and the transcript is bounded as on
// the agent (steun_agent.chat.service.Transcript): the oldest messages go first and are counted. At the end of
// the session the transcript is handed to the server for the session record.

import { post } from "../lib/api";
import { h } from "../lib/dom";
import { language, onLanguageChange, t } from "../lib/i18n";
import { button } from "../lib/ui";
import { utf8, type Bytes } from "../session/bytes";
import {
  ChatProtocolError,
  Phrase,
  Sender,
  decodeFromAgent,
  encode,
  knownPhrase,
  phraseName,
  phraseSender,
  prepareText,
  type ChatMessage,
} from "../session/chatproto";

/** Most messages a transcript keeps (as MAX_TRANSCRIPT_MESSAGES on the agent). */
export const MAX_TRANSCRIPT_MESSAGES = 1000;
/** Most text a transcript keeps, UTF-8 bytes (as MAX_TRANSCRIPT_BYTES on the agent). */
export const MAX_TRANSCRIPT_BYTES = 1024 * 1024;
/** Messages per second the agent accepts from a technician on average, and in one burst (its RATE, BURST). */
const RATE = 5;
const BURST = 20;
/** Stop saying "typing" after this long without a keystroke. */
const TYPING_IDLE_MS = 4000;
/** Forget the user's "typing" after this long without news (a lost "stopped typing"). */
const TYPING_STALE_MS = 15000;

const TECHNICIAN_PHRASES: Phrase[] = [
  Phrase.HELLO,
  Phrase.ONE_MOMENT,
  Phrase.DONT_TOUCH,
  Phrase.SAVE_WORK,
  Phrase.RESTART,
  Phrase.CAN_YOU_SEE,
  Phrase.ALL_DONE,
  Phrase.THANKS_BYE,
];

export interface ChatLine {
  id: number;
  sender: Sender;
  /** What the sender wrote (for a phrase: the sender's own rendering). */
  text: string;
  /** The sender's clock, Unix seconds. */
  time: number;
  /** This console's clock, Unix seconds. */
  received: number;
  phrase: number;
}

/** What the server keeps of the chat (POST /api/sessions/{id}/transcript). */
export interface TranscriptExport {
  messages: { id: number; from: "technician" | "user"; time: number; text: string; phrase: number }[];
  dropped: number;
}

/** The session's messages, bounded in count and bytes; the oldest go first and are counted. */
export class Transcript {
  private readonly items: ChatLine[] = [];
  private size = 0;
  dropped = 0;

  constructor(
    private readonly maxMessages = MAX_TRANSCRIPT_MESSAGES,
    private readonly maxBytes = MAX_TRANSCRIPT_BYTES,
  ) {}

  /** Adds a line; returns how many old lines were dropped to make room. */
  add(line: ChatLine): number {
    this.items.push(line);
    this.size += utf8(line.text).length;
    let dropped = 0;
    while (this.items.length > this.maxMessages || this.size > this.maxBytes) {
      const old = this.items.shift()!;
      this.size -= utf8(old.text).length;
      dropped += 1;
    }
    this.dropped += dropped;
    return dropped;
  }

  lines(): readonly ChatLine[] {
    return this.items;
  }

  get nbytes(): number {
    return this.size;
  }

  export(): TranscriptExport {
    return {
      messages: this.items.map((line) => ({
        id: line.id,
        from: line.sender === Sender.TECHNICIAN ? "technician" : "user",
        time: line.time,
        text: line.text,
        phrase: line.phrase,
      })),
      dropped: this.dropped,
    };
  }
}

/** Hands the transcript to the server for the session record. */
export async function uploadTranscript(sessionId: string, transcript: TranscriptExport): Promise<void> {
  await post(`/api/sessions/${encodeURIComponent(sessionId)}/transcript`, transcript);
}

export interface ChatPanel {
  el: HTMLElement;
  /** One DATA record's payload on Channel.CHAT. */
  onData(payload: Uint8Array): void;
  /** Whether the user allows the chat now. */
  setGranted(granted: boolean): void;
  /** The tab was shown or hidden (what is shown is read; what arrives while hidden counts as unread). */
  setVisible(visible: boolean): void;
  /** The session ended: the chat becomes read-only. */
  end(): void;
  transcript(): TranscriptExport;
  /** Whether anything was said or the chat was ever allowed (worth keeping with the session). */
  used(): boolean;
  dispose(): void;
}

export interface ChatOptions {
  send(payload: Bytes): void;
  /** The number of the user's messages not seen yet (for the tab's badge). */
  onUnread(count: number): void;
  /** The agent sent something that breaks the chat protocol: the session must end with this code. */
  onProtocolError(code: string): void;
}

function phraseKey(phrase: Phrase): string {
  return `session.chat_phrase_${phraseName(phrase).toLowerCase()}`;
}

/** What the technician reads: a phrase the console knows in the console's language, else the sender's text. */
function shownText(line: ChatLine): string {
  const phrase = knownPhrase(line.phrase);
  return phrase !== null && phraseSender(phrase) === line.sender ? t(phraseKey(phrase)) : line.text;
}

export function createChatPanel(options: ChatOptions): ChatPanel {
  const transcript = new Transcript();
  let granted = false;
  let everGranted = false;
  let visible = false;
  let ended = false;
  let nextId = 1;
  let lastUserId = 0;
  let readSent = 0;
  let unread = 0;
  /** The user has seen every technician message up to this id. */
  let readByUser = 0;
  let tokens = BURST;
  let refilled = performance.now();
  let typing = false;
  let typingTimer: number | null = null;
  let userTyping = false;
  let userTypingTimer: number | null = null;
  const items: HTMLLIElement[] = [];

  const log = h("ol", {
    class: "chat-log",
    attrs: { role: "log", "aria-live": "polite", tabindex: 0 },
    tLabel: "session.chat_log",
    dataset: { testid: "chat-log" },
  });
  const droppedNote = h("p", { class: "chat-dropped muted", attrs: { hidden: true } });
  const empty = h("p", { class: "chat-empty muted", t: "session.chat_empty" });
  const typingLine = h("p", { class: "chat-typing muted", attrs: { "aria-live": "polite", hidden: true }, t: "session.chat_typing" });
  const input = h("textarea", {
    class: "chat-input",
    attrs: { name: "chat-message", rows: 2, spellcheck: "true", autocomplete: "off" },
    tLabel: "session.chat_input",
    tPlaceholder: "session.chat_placeholder",
  });
  const sendButton = button("session.chat_send", () => sendText(), "primary");
  const notice = h("p", { class: "chat-notice muted", attrs: { "aria-live": "polite", hidden: true } });
  const phraseButtons = TECHNICIAN_PHRASES.map((phrase) => {
    const b = button(phraseKey(phrase), () => sendPhrase(phrase), "secondary");
    b.classList.add("button-small", "chat-phrase");
    b.dataset["phrase"] = String(phrase);
    return b;
  });
  const phrases = h(
    "div",
    { class: "chat-phrases", attrs: { role: "group" }, tLabel: "session.chat_phrases" },
    phraseButtons,
  );
  const form = h(
    "form",
    { class: "chat-form", attrs: { novalidate: true } },
    input,
    h("div", { class: "chat-form-row" }, h("span", { class: "muted chat-hint", t: "session.chat_hint" }), sendButton),
  );
  const el = h("div", { class: "chat-panel" }, droppedNote, empty, log, typingLine, phrases, form, notice);

  function showNotice(key: string | null): void {
    notice.textContent = key ? t(key) : "";
    notice.hidden = key === null;
  }

  function canSend(): boolean {
    return granted && !ended;
  }

  /** The agent drops what comes faster than RATE/BURST; better to say so here than lose a line silently. */
  function takeToken(): boolean {
    const now = performance.now();
    tokens = Math.min(BURST, tokens + ((now - refilled) / 1000) * RATE);
    refilled = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  function say(text: string, phrase: number): boolean {
    if (!canSend()) return false;
    if (!takeToken()) {
      showNotice("session.chat_too_fast");
      return false;
    }
    showNotice(null);
    const line: ChatLine = { id: nextId, sender: Sender.TECHNICIAN, text, time: Date.now() / 1000, received: Date.now() / 1000, phrase };
    nextId += 1;
    options.send(encode({ kind: "message", id: line.id, sender: Sender.TECHNICIAN, text, time: line.time, phrase }));
    add(line);
    return true;
  }

  function sendText(): void {
    const text = prepareText(input.value);
    if (text === "") return;
    if (say(text, 0)) {
      input.value = "";
      setTyping(false);
    }
    input.focus();
  }

  function sendPhrase(phrase: Phrase): void {
    // The user's agent shows the phrase in the user's language; the text is for one that does not know the id.
    say(t(phraseKey(phrase)), phrase);
  }

  function setTyping(active: boolean): void {
    if (typingTimer !== null) window.clearTimeout(typingTimer);
    typingTimer = null;
    if (active && !canSend()) return;
    if (active) typingTimer = window.setTimeout(() => setTyping(false), TYPING_IDLE_MS);
    if (active === typing) return;
    typing = active;
    if (canSend()) options.send(encode({ kind: "typing", sender: Sender.TECHNICIAN, active }));
  }

  // ---- the transcript on screen

  function lineElement(line: ChatLine): HTMLLIElement {
    const mine = line.sender === Sender.TECHNICIAN;
    const when = new Date(line.time * 1000);
    const time = h(
      "time",
      { attrs: { datetime: Number.isFinite(when.getTime()) ? when.toISOString() : null } },
      new Intl.DateTimeFormat(language(), { hour: "2-digit", minute: "2-digit" }).format(Number.isFinite(when.getTime()) ? when : new Date()),
    );
    const meta = h(
      "p",
      { class: "chat-meta" },
      h("span", { class: "chat-who" }, t(mine ? "session.chat_from_you" : "session.chat_from_user")),
      " · ",
      time,
      mine ? h("span", { class: "chat-read" }) : null,
    );
    const li = h(
      "li",
      { class: ["chat-line", mine ? "chat-from-technician" : "chat-from-user"], dataset: { id: String(line.id) } },
      h("p", { class: "chat-bubble" }, shownText(line)),
      meta,
    );
    if (mine) markRead(li, line);
    return li;
  }

  function markRead(li: HTMLLIElement, line: ChatLine): void {
    const mark = li.querySelector(".chat-read");
    if (!mark) return;
    const read = line.id <= readByUser;
    mark.textContent = ` · ${t(read ? "session.chat_read" : "session.chat_sent")}`;
    li.classList.toggle("chat-is-read", read);
  }

  function add(line: ChatLine): void {
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const dropped = transcript.add(line);
    for (let i = 0; i < dropped; i++) items.shift()?.remove();
    const li = lineElement(line);
    items.push(li);
    log.append(li);
    renderMeta();
    if (nearBottom || line.sender === Sender.TECHNICIAN) log.scrollTop = log.scrollHeight;
  }

  function renderMeta(): void {
    empty.hidden = transcript.lines().length > 0;
    droppedNote.hidden = transcript.dropped === 0;
    droppedNote.textContent = transcript.dropped > 0 ? t("session.chat_dropped", { count: transcript.dropped }) : "";
  }

  function renderAll(): void {
    const lines = transcript.lines();
    items.length = 0;
    for (const line of lines) items.push(lineElement(line));
    log.replaceChildren(...items);
    renderMeta();
  }

  function render(): void {
    const open = canSend();
    input.disabled = !open;
    sendButton.disabled = !open;
    for (const b of phraseButtons) b.disabled = !open;
    el.classList.toggle("chat-closed", !open);
    if (ended) showNotice("session.chat_ended");
    else if (everGranted && !granted) showNotice("session.chat_withdrawn");
    typingLine.hidden = !userTyping || ended;
  }

  // ---- read marks and the unread badge

  function markSeen(): void {
    if (!visible || document.visibilityState !== "visible") return;
    if (unread !== 0) {
      unread = 0;
      options.onUnread(0);
    }
    if (lastUserId > readSent && canSend()) {
      readSent = lastUserId;
      options.send(encode({ kind: "read", sender: Sender.TECHNICIAN, upTo: lastUserId }));
    }
  }

  function receive(message: ChatMessage): void {
    switch (message.kind) {
      case "message": {
        const now = Date.now() / 1000;
        add({ id: message.id, sender: message.sender, text: message.text, time: message.time, received: now, phrase: message.phrase });
        lastUserId = Math.max(lastUserId, message.id);
        setUserTyping(false);
        if (visible && document.visibilityState === "visible") {
          markSeen();
        } else {
          unread += 1;
          options.onUnread(unread);
        }
        return;
      }
      case "typing":
        setUserTyping(message.active);
        return;
      case "read":
        if (message.upTo > readByUser) {
          readByUser = Math.min(message.upTo, nextId - 1);
          transcript.lines().forEach((line, i) => {
            if (line.sender === Sender.TECHNICIAN) markRead(items[i]!, line);
          });
        }
        return;
    }
  }

  function setUserTyping(active: boolean): void {
    if (userTypingTimer !== null) window.clearTimeout(userTypingTimer);
    userTypingTimer = active ? window.setTimeout(() => setUserTyping(false), TYPING_STALE_MS) : null;
    userTyping = active;
    typingLine.hidden = !userTyping || ended;
  }

  input.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter while composing (IME) belongs to the composition.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  input.addEventListener("input", () => setTyping(input.value.trim() !== ""));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendText();
  });
  const onVisibility = (): void => markSeen();
  document.addEventListener("visibilitychange", onVisibility);
  const stopLanguage = onLanguageChange(() => {
    renderAll();
    render();
  });
  renderMeta();
  render();

  return {
    el,
    onData(payload) {
      if (ended) return;
      let message: ChatMessage;
      try {
        message = decodeFromAgent(payload);
      } catch (err) {
        options.onProtocolError(err instanceof ChatProtocolError ? err.code : "invalid_message");
        return;
      }
      receive(message);
    },
    setGranted(now) {
      granted = now;
      if (now) everGranted = true;
      if (!now) setTyping(false);
      render();
      markSeen();
    },
    setVisible(now) {
      visible = now;
      if (now) {
        markSeen();
        if (canSend()) input.focus();
        log.scrollTop = log.scrollHeight;
      }
    },
    end() {
      if (ended) return;
      setTyping(false);
      ended = true;
      setUserTyping(false);
      render();
    },
    transcript: () => transcript.export(),
    used: () => everGranted || transcript.lines().length > 0,
    dispose() {
      ended = true;
      if (typingTimer !== null) window.clearTimeout(typingTimer);
      if (userTypingTimer !== null) window.clearTimeout(userTypingTimer);
      document.removeEventListener("visibilitychange", onVisibility);
      stopLanguage();
    },
  };
}
