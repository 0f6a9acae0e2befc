"""Preview the agent's windows without a server: ``python -m steun_agent.ui consent --lang nl``.

Also ``code``, ``indicator`` and ``chat`` (the indicator with a chat that sends nowhere). For translators,
designers and anyone checking how a prompt reads. Nothing is granted to anyone.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from steun_protocol.chat import Message, Phrase, Sender, encode
from steun_protocol.session import Capability

from ..chat import ChatService
from ..consent import ConsentPrompt, Technician, ordered
from . import open_ui
from .base import IndicatorInfo


async def _preview(args: argparse.Namespace) -> int:
    ui = await open_ui(args.lang, prefer="terminal" if args.terminal else "auto")
    technician = Technician(user_id="jdevries", name="Jan de Vries")
    capabilities = ordered(Capability(c) for c in args.capabilities.split(","))
    try:
        if args.window == "code":
            print(await ui.ask_support_code())
        elif args.window == "consent":
            prompt = ConsentPrompt(
                org_name="Helpdesk Gemeente Voorbeeld",
                technician=technician,
                reason="Printer does not print (ticket 4711)",
                sas="048213",
                capabilities=capabilities,
                forbidden=(Capability.SHELL,),
                already_granted=(),
                timeout=args.timeout,
            )
            print(await ui.ask_consent(prompt))
        else:
            stop = asyncio.Event()
            info = IndicatorInfo("Helpdesk Gemeente Voorbeeld", technician, capabilities, time.monotonic())
            indicator = await ui.show_indicator(info, on_stop=stop.set)
            chat_window = None
            if args.window == "chat":
                chat = ChatService(_nowhere, language=ui.language)
                chat.feed(encode(Message(1, Sender.TECHNICIAN, "Hello", time.time(), Phrase.HELLO)))
                chat_window = await ui.show_chat(chat, technician.name)
            try:
                await asyncio.wait_for(stop.wait(), args.timeout)
                print("stopped")
            except TimeoutError:
                await indicator.close()
            if chat_window is not None:
                await chat_window.close()
    finally:
        await ui.close()
    return 0


async def _nowhere(_record: bytes) -> None:
    """The preview's chat goes nowhere."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steun_agent.ui", description=__doc__)
    parser.add_argument("window", choices=["code", "consent", "indicator", "chat"])
    parser.add_argument("--lang", default=None, help="en, nl or fr (default: the locale)")
    parser.add_argument("--terminal", action="store_true", help="the text fallback instead of Tk")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--capabilities", default="view,control,clipboard")
    return asyncio.run(_preview(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
