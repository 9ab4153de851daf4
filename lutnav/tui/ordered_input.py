"""An Input whose editing keys take effect in the order they were typed.

Textual's Input inserts printable characters in its own message queue but runs
its key bindings (backspace, end, delete, …) only after the key has bubbled up
to the app. Typed fast — or pasted by a terminal as keys — ``End ⌫⌫⌫⌫ 0.3``
becomes "0.3 inserted, then four deletions": the box ends up empty. Here every
editing key runs from the Input's own queue, in order; other keys (tab, escape,
the app's shortcuts) bubble as before.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input

#: key → action of every Input binding ("home,ctrl+a" spelled out as two keys)
EDIT_KEYS = {key.strip(): binding.action for binding in Input.BINDINGS for key in binding.key.split(",")}


class OrderedInput(Input, inherit_bindings=False):
    async def _on_key(self, event: events.Key) -> None:
        action = EDIT_KEYS.get(event.key)
        if action is None:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        await self.run_action(action)
