"""The app's stylesheet (kept in Python so it ships with the package as code)."""

CSS = """
Screen { layout: vertical; }
#bar { height: 1; }
#bar Input { width: 1fr; }
#bar Select { width: 22; }
#body { height: 1fr; }
#tree { width: 26; border-right: vkey $panel; }
#middle { width: 1fr; }
#table { height: 1fr; overflow-x: hidden; }
#detail { width: 40%; min-width: 30; max-width: 70; border-left: vkey $panel; padding: 0 1; }
#detail .preview-image { height: 12; width: auto; margin-top: 1; }
#empty { height: 1fr; content-align: center middle; padding: 1 4; display: none; }
#status { height: 1; display: none; }
#status.-busy { display: block; }
#status-text { width: 1fr; }
#status ProgressBar { width: 40; }
#banner { height: auto; display: none; background: $error; color: $text; padding: 0 1; }
#banner.-shown { display: block; }

.-tree-hidden #tree { display: none; }
.-empty #bar, .-empty #body { display: none; }
.-empty #empty { display: block; }

EntryTable > .entry-table--header { text-style: bold underline; }
EntryTable > .entry-table--cursor { text-style: reverse; }
EntryTable:focus > .entry-table--cursor { text-style: bold reverse; }
EntryTable > .entry-table--broken { color: $error; }
EntryTable > .entry-table--basket { text-style: bold; color: $accent; }

#basket { height: auto; max-height: 45%; border-top: hkey $panel; display: none; }
#basket-title { width: 1fr; height: auto; }
#basket-hint { width: 1fr; height: auto; color: $text-muted; }
#basket.-refused { border-top: hkey $error; }
#basket-items { height: auto; }
.basket-row { height: 1; }
.basket-name { width: 1fr; }
.basket-weight { width: 10; }
Input.-bad { text-style: underline; color: $error; }
#basket-verdict { height: auto; }
#basket-prompt { height: auto; color: $text-muted; }

CardForm { align: center middle; }
#card-dialog { width: 90%; max-width: 100; height: 90%; border: round $accent; padding: 0 1; }
#card-fields { height: 1fr; }
#card-raw { height: 1fr; min-height: 8; }
#card-notes { height: 6; }
.card-label { margin-top: 1; color: $text-muted; }
#card-message { height: auto; }
#card-buttons { height: 1; align-horizontal: right; }
#card-buttons Button { margin-left: 2; }

/* toasts over the top of the detail pane, never over the table or the basket */
ToastRack { dock: top; align: right top; margin-top: 1; }
Toast { max-width: 38%; }

#entry-scroll { height: 1fr; padding: 0 1; }
#entry-previews { height: auto; margin: 1 0; }
.entry-preview { height: 24; width: auto; margin-right: 2; }

HelpScreen { align: center middle; }
#help-dialog { width: 90%; max-width: 100; height: auto; max-height: 90%; border: round $accent; padding: 0 1; }
"""
