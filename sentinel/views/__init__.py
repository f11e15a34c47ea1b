"""The read model the API and the console share, between them and the engine.

- :mod:`.groups`: error-group rows (:class:`~.groups.GroupView`), the queue's URL filters, pages
  and the CSV export of the whole filtered set;
- :mod:`.records`: the audit log's rows, filters, refusal reasons and CSV export;
- :mod:`.export`: the one CSV writer both faces use (formula-safe cells from
  :mod:`sentinel.core.export`, times as ISO 8601 in UTC);
- :mod:`.explain`: why a line lands where it does (the rule tester) and why a group has its rule;
- :mod:`.params`: the tolerant parsing of URL parameters the console's links carry.

Nothing here renders (no FastAPI, no Streamlit) and nothing caches: each call reads the live store.
"""
