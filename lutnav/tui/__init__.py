"""The terminal UI: ``lutnav`` with no verb.

Widgets show what the catalog answers and send what the user does back to it;
the catalog itself (``catalog.index.browse``, ``catalog.index.query``, ``catalog.cards.card_file``)
holds every rule.  Nothing here imports torch: previews run the same code as
``lutnav preview`` in a worker, and only that code loads the heavy stack.
"""
